//! Segment forwarding against a local HTTP server: auth, body, gzip, splitting, errors.

use std::io::Read;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap as AxumHeaders, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::json;

use super::*;
use crate::destinations::{REDACTED, redact, restore_secrets};

fn ctx() -> BuildContext {
    BuildContext {
        files_dir: "/tmp".into(),
        allowed_file_dirs: vec![],
    }
}

type Seen = Arc<Mutex<Vec<(AxumHeaders, Bytes)>>>;

/// A receiver at `/v1/batch` answering `status` with `body`.
async fn receiver(status: u16, body: &'static str) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = Arc::clone(&seen);
    let app = Router::new().route(
        "/v1/batch",
        post(move |headers: AxumHeaders, bytes: Bytes| {
            let s = Arc::clone(&s);
            async move {
                s.lock().unwrap().push((headers, bytes));
                let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
                if status == 429 {
                    response
                        .headers_mut()
                        .insert("retry-after", "9".parse().unwrap());
                }
                response
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

fn record(n: i64) -> Record {
    Record {
        seq: n,
        source: 1,
        received_at: 0,
        message_id: format!("m{n}"),
        user_id: Some("u".into()),
        anonymous_id: None,
        payload: format!(
            r#"{{"type":"track","event":"E{n}","messageId":"m{n}","sentAt":"2026-11-25T14:00:00Z","timestamp":"2026-11-25T13:59:59.000Z","context":{{"consent":{{"categoryPreferences":{{"C0001":true}}}}}}}}"#
        )
        .into_bytes(),
        held: false,
        intended: Vec::new(),
        system: false,
    }
}

fn build(url: &str, extra: Value) -> Arc<dyn Destination> {
    let mut settings = json!({"url": url, "writeKey": "wk-123"});
    settings
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let settings = SegmentForwardType.validate(&settings, &ctx()).unwrap();
    SegmentForwardType.build(&settings, &ctx()).unwrap()
}

#[tokio::test]
async fn posts_batches_with_basic_auth_and_optional_gzip() {
    for gzip in [false, true] {
        let (url, seen) = receiver(200, r#"{"success":true}"#).await;
        let dest = build(&url, json!({"gzip": gzip}));
        dest.deliver(&[record(1), record(2)]).await.unwrap();
        let got = seen.lock().unwrap().clone();
        assert_eq!(got.len(), 1);
        let (headers, body) = &got[0];
        // "wk-123:" in base64.
        assert_eq!(headers["authorization"], "Basic d2stMTIzOg==");
        let body = if gzip {
            assert_eq!(headers["content-encoding"], "gzip");
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body.as_ref())
                .read_to_end(&mut out)
                .unwrap();
            out
        } else {
            assert!(headers.get("content-encoding").is_none());
            body.to_vec()
        };
        let body: Value = serde_json::from_slice(&body).unwrap();
        let batch = body["batch"].as_array().unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[0]["messageId"], "m1");
        assert_eq!(
            batch[0]["context"],
            json!({"consent": {"categoryPreferences": {"C0001": true}}}),
            "consent unchanged"
        );
        assert!(
            batch[0].get("sentAt").is_none(),
            "the event's sentAt is dropped"
        );
        assert_eq!(batch[0]["timestamp"], "2026-11-25T13:59:59.000Z");
        assert!(crate::clock::parse_ms(body["sentAt"].as_str().unwrap()).is_some());
    }
}

#[tokio::test]
async fn errors_are_classified() {
    let cases = [
        (500, "retryable"),
        (503, "retryable"),
        (408, "retryable"),
        (429, "retryable after 9s"),
        (400, "permanent"),
        (401, "permanent"),
        (404, "permanent"),
        (301, "permanent"),
    ];
    for (status, expected) in cases {
        let (url, _) = receiver(status, "{}").await;
        let got = match build(&url, json!({})).deliver(&[record(1)]).await {
            Err(DeliveryError::Retryable {
                retry_after: Some(d),
                ..
            }) => format!("retryable after {}s", d.as_secs()),
            Err(DeliveryError::Retryable { .. }) => "retryable".into(),
            Err(DeliveryError::Permanent { message }) => {
                assert!(message.contains(&status.to_string()), "{message}");
                "permanent".into()
            }
            Ok(()) => "ok".into(),
        };
        assert_eq!(got, expected, "HTTP {status}");
    }
    // Items rejected one by one in a 200: delivered (retrying would not help).
    let (url, _) = receiver(
        200,
        r#"{"success":true,"rejected":[{"index":0,"code":"x"}]}"#,
    )
    .await;
    assert!(build(&url, json!({})).deliver(&[record(1)]).await.is_ok());
    let closed = build("http://127.0.0.1:9", json!({"timeoutMs": 500}));
    assert!(matches!(
        closed.deliver(&[record(1)]).await,
        Err(DeliveryError::Retryable { .. })
    ));
}

#[test]
fn requests_stay_under_the_size_limits() {
    let events: Vec<Vec<u8>> = (0..10)
        .map(|i| format!(r#"{{"n":{i},"pad":"{}"}}"#, "x".repeat(100)).into_bytes())
        .collect();
    let all = request_bodies(&events, "T", usize::MAX, 2_500);
    assert_eq!(all.len(), 1);
    let one: Value = serde_json::from_slice(&all[0]).unwrap();
    assert_eq!(one["batch"].as_array().unwrap().len(), 10);
    assert_eq!(one["sentAt"], "T");
    let small = request_bodies(&events, "T", 400, 2_500);
    assert!(small.len() > 3);
    let mut count = 0;
    for body in &small {
        assert!(body.len() <= 400, "{} bytes", body.len());
        count += serde_json::from_slice::<Value>(body).unwrap()["batch"]
            .as_array()
            .unwrap()
            .len();
    }
    assert_eq!(count, 10);
    assert_eq!(request_bodies(&events, "T", usize::MAX, 3).len(), 4);
    // An event larger than the limit still goes, alone.
    assert_eq!(request_bodies(&events[..2], "T", 10, 2_500).len(), 2);
    assert!(request_bodies(&[], "T", 10, 10).is_empty());
}

#[test]
fn forwarded_events_and_retry_after() {
    let event = br#"{"messageId":"m","sentAt":"x","timestamp":"t"}"#;
    let out: Value = serde_json::from_slice(&forwarded(event)).unwrap();
    assert_eq!(out, json!({"messageId": "m", "timestamp": "t"}));
    let untouched = br#"{"messageId":"m","z":1,"a":2}"#;
    assert_eq!(forwarded(untouched), untouched.to_vec());
    let mut h = HeaderMap::new();
    h.insert("retry-after", "120".parse().unwrap());
    assert_eq!(retry_after(&h), Some(Duration::from_secs(120)));
    h.insert(
        "retry-after",
        "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
    );
    assert_eq!(retry_after(&h), Some(Duration::ZERO));
    h.insert("retry-after", "99999".parse().unwrap());
    assert_eq!(retry_after(&h), Some(Duration::from_secs(3_600)));
}

#[test]
fn settings_validation_endpoint_and_redaction() {
    let bad = [
        json!({"writeKey": "k"}),
        json!({"url": "http://x"}),
        json!({"url": "ftp://x", "writeKey": "k"}),
        json!({"url": "http://x?a=b", "writeKey": "k"}),
        json!({"url": "http://x", "writeKey": ""}),
        json!({"url": "http://x", "writeKey": "k", "batchSize": 0}),
        json!({"url": "http://x", "writeKey": "k", "batchSize": 2_501}),
        json!({"url": "http://x", "writeKey": "k", "timeoutMs": 1}),
        json!({"url": "http://x", "writeKey": "k", "gzip": "yes"}),
        json!({"url": "http://x", "writeKey": "k", "headers": {}}),
    ];
    for settings in bad {
        assert!(
            SegmentForwardType.validate(&settings, &ctx()).is_err(),
            "{settings}"
        );
    }
    let stored = SegmentForwardType
        .validate(
            &json!({"url": "https://api.segment.io", "writeKey": "wk"}),
            &ctx(),
        )
        .unwrap();
    assert_eq!(
        stored,
        json!({"url": "https://api.segment.io", "writeKey": "wk", "batchSize": 100, "gzip": false, "timeoutMs": 10000})
    );
    let shown = redact(&SegmentForwardType, &stored);
    assert_eq!(shown["writeKey"], REDACTED);
    let mut back = shown.clone();
    restore_secrets(&SegmentForwardType, &mut back, &stored);
    assert_eq!(back, stored);
    for (url, endpoint) in [
        ("https://api.segment.io", "https://api.segment.io/v1/batch"),
        ("https://api.segment.io/", "https://api.segment.io/v1/batch"),
        (
            "https://events.eu1.segmentapis.com/v1",
            "https://events.eu1.segmentapis.com/v1/batch",
        ),
        (
            "http://127.0.0.1:8080/v1/batch",
            "http://127.0.0.1:8080/v1/batch",
        ),
        ("http://proxy/segment/", "http://proxy/segment/v1/batch"),
    ] {
        let config: SegmentForwardConfig =
            serde_json::from_value(json!({"url": url, "writeKey": "k"})).unwrap();
        assert_eq!(config.endpoint().unwrap().as_str(), endpoint, "{url}");
    }
}
