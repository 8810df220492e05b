#!/usr/bin/env python3
"""Send events to Sluice with the real segment-analytics-python SDK.

Usage: send_events.py HOST WRITE_KEY RUN_ID

Sends, with consent objects:
  * sync mode (one request per call): track, identify, page;
  * async mode with gzip and batching: three tracks in one gzipped batch.
Prints one JSON line with what was sent, for the Rust test to compare against.
"""
import json
import sys

import segment.analytics as analytics
from segment.analytics import Client


def main():
    host, write_key, run = sys.argv[1], sys.argv[2], sys.argv[3]
    granted = {"context": {"consent": {"categoryPreferences": {"C0001": True, "C0004": True}}}}
    denied = {"context": {"consent": {"categoryPreferences": {"C0001": True, "C0004": False}}}}
    errors = []

    analytics.write_key = write_key
    analytics.host = host
    analytics.sync_mode = True
    analytics.on_error = lambda e, batch: errors.append(str(e))
    analytics.track(f"{run}-user", f"{run} py sync granted", {"revenue": 9.5}, context=granted["context"])
    analytics.track(f"{run}-user", f"{run} py sync denied", {"revenue": 1}, context=denied["context"])
    analytics.identify(f"{run}-user", {"email": "py@example.com"}, context=granted["context"])
    analytics.page(f"{run}-user", "Docs", "Home", {"url": "http://example.com/"}, context=denied["context"])
    analytics.flush()

    client = Client(write_key, host=host, gzip=True, upload_size=10, upload_interval=0.2,
                    on_error=lambda e, batch: errors.append(str(e)))
    for i in range(3):
        prefs = granted if i % 2 == 0 else denied
        client.track(anonymous_id=f"{run}-anon-{i}", event=f"{run} py batch {i}", properties={"i": i},
                     context=prefs["context"])
    client.flush()
    client.join()
    print(json.dumps({"errors": errors}))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
