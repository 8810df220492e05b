//! The JavaScript harness in `harness/js` shared by the browser tests: where it is, what it
//! needs, bundling a page script with esbuild, and running a Node driver that prints a JSON
//! summary as its last JSON line.
//!
//! Everything uses tokio's process API, so the server under test keeps running on the test's
//! runtime meanwhile.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

pub const CHROMIUM: &str = "/usr/bin/chromium";

pub fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("harness/js")
}

/// Chromium and these paths under `harness/js` (e.g. `node_modules/playwright-core`), or a
/// loud failure saying how to get them.
pub fn require_browser(paths: &[&str]) {
    let hint = "run scripts/test, which installs Debian chromium and the harness/js npm packages";
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: {hint}"
    );
    for path in paths {
        assert!(
            js_dir().join(path).exists(),
            "harness/js/{path} is missing: {hint}"
        );
    }
}

/// Bundle `entry` into `outfile` (paths relative to `harness/js`): one IIFE for the browser.
pub async fn bundle(entry: &str, outfile: &str) {
    let js = js_dir();
    let output = tokio::process::Command::new(js.join("node_modules/.bin/esbuild"))
        .args([
            entry,
            "--bundle",
            "--format=iife",
            "--platform=browser",
            "--target=es2020",
            &format!("--outfile={outfile}"),
            "--log-level=warning",
        ])
        .current_dir(&js)
        .kill_on_drop(true)
        .output()
        .await
        .expect("run esbuild");
    assert!(
        output.status.success(),
        "esbuild failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Run `node ARGS` in `harness/js` and return the driver's summary (its last JSON line). When
/// the driver fails, the test fails showing the summary's `shown` fields and stderr.
pub async fn drive(args: &[&str], within: Duration, shown: &[&str]) -> Value {
    let child = tokio::process::Command::new("node")
        .args(args)
        .current_dir(js_dir())
        .kill_on_drop(true)
        .output();
    let script = args.first().copied().unwrap_or_default();
    let output = tokio::time::timeout(within, child)
        .await
        .unwrap_or_else(|_| panic!("node {script} did not finish within {within:?}"))
        .unwrap_or_else(|e| panic!("run node {script}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Value = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or(Value::Null);
    if !output.status.success() {
        let fields: String = shown
            .iter()
            .map(|key| format!("{key}: {:#}\n", summary[*key]))
            .collect();
        panic!(
            "node {} failed ({}):\n{fields}stdout: {stdout}\nstderr: {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    summary
}
