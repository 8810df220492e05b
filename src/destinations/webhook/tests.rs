//! Webhook delivery against a real local HTTP server.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;

use super::*;

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(HeaderMap, Bytes)>>>);

/// A receiver that answers with the statuses given, in turn (the last one repeats).
async fn receiver(statuses: Vec<(u16, Option<&'static str>)>) -> (String, Received) {
    let received = Received::default();
    let seen = received.clone();
    let statuses = Arc::new(Mutex::new(statuses));
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let seen = seen.clone();
            let statuses = statuses.clone();
            async move {
                seen.0.lock().unwrap().push((headers, body));
                let mut s = statuses.lock().unwrap();
                let (code, retry_after) = if s.len() > 1 { s.remove(0) } else { s[0] };
                let mut response = (StatusCode::from_u16(code).unwrap(), "answer").into_response();
                if let Some(ra) = retry_after {
                    response
                        .headers_mut()
                        .insert("retry-after", ra.parse().unwrap());
                }
                response
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), received)
}

fn record(n: i64) -> Record {
    Record {
        seq: n,
        source: 1,
        received_at: 0,
        message_id: format!("m{n}"),
        user_id: None,
        anonymous_id: Some("a".into()),
        payload: format!(r#"{{"messageId":"m{n}"}}"#).into_bytes(),
        held: false,
        intended: Vec::new(),
        system: false,
    }
}

fn webhook(url: &str, extra: serde_json::Value) -> Arc<dyn Destination> {
    let mut settings = serde_json::json!({"url": url});
    settings
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let ctx = BuildContext {
        files_dir: "/tmp".into(),
        allowed_file_dirs: vec![],
    };
    let validated = WebhookType.validate(&settings, &ctx).unwrap();
    WebhookType.build(&validated, &ctx).unwrap()
}

#[tokio::test]
async fn single_event_signed_with_headers() {
    let (url, received) = receiver(vec![(200, None)]).await;
    let hook = webhook(
        &url,
        serde_json::json!({"secret": "k", "headers": {"X-Team": "growth"}}),
    );
    hook.deliver(&[record(1)]).await.unwrap();
    let got = received.0.lock().unwrap();
    let (headers, body) = &got[0];
    assert_eq!(body.as_ref(), br#"{"messageId":"m1"}"#);
    assert_eq!(headers["x-team"], "growth");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        headers["x-signature"].to_str().unwrap(),
        signature("k", body)
    );
    // A known HMAC-SHA256 vector keeps the signature format honest.
    assert_eq!(
        signature("key", b"The quick brown fox jumps over the lazy dog"),
        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    );
}

#[tokio::test]
async fn batches_are_wrapped() {
    let (url, received) = receiver(vec![(200, None)]).await;
    let hook = webhook(&url, serde_json::json!({"batchSize": 10}));
    assert_eq!(hook.max_batch(), 10);
    hook.deliver(&[record(1), record(2)]).await.unwrap();
    hook.deliver(&[record(3)]).await.unwrap();
    let got = received.0.lock().unwrap();
    assert_eq!(
        got[0].1.as_ref(),
        br#"{"batch":[{"messageId":"m1"},{"messageId":"m2"}]}"#
    );
    assert_eq!(got[1].1.as_ref(), br#"{"batch":[{"messageId":"m3"}]}"#);
}

#[tokio::test]
async fn errors_are_classified() {
    let cases: Vec<(u16, Option<&'static str>, &str)> = vec![
        (500, None, "retryable"),
        (503, None, "retryable"),
        (408, None, "retryable"),
        (429, Some("7"), "retryable after 7s"),
        (400, None, "permanent"),
        (401, None, "permanent"),
        (404, None, "permanent"),
        (302, None, "permanent"),
    ];
    for (status, retry_after, expected) in cases {
        let (url, _) = receiver(vec![(status, retry_after)]).await;
        let result = webhook(&url, serde_json::json!({}))
            .deliver(&[record(1)])
            .await;
        let got = match result {
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
    // Nobody listening: a network error, retryable.
    let closed = webhook("http://127.0.0.1:9/", serde_json::json!({"timeoutMs": 500}));
    assert!(matches!(
        closed.deliver(&[record(1)]).await,
        Err(DeliveryError::Retryable { .. })
    ));
}

#[test]
fn settings_validation() {
    let ctx = BuildContext {
        files_dir: "/tmp".into(),
        allowed_file_dirs: vec![],
    };
    let bad = [
        serde_json::json!({}),
        serde_json::json!({"url": "ftp://x"}),
        serde_json::json!({"url": "not a url"}),
        serde_json::json!({"url": "http://x", "batchSize": 0}),
        serde_json::json!({"url": "http://x", "batchSize": 5000}),
        serde_json::json!({"url": "http://x", "timeoutMs": 1}),
        serde_json::json!({"url": "http://x", "headers": {"bad header": "v"}}),
        serde_json::json!({"url": "http://x", "secret": ""}),
        serde_json::json!({"url": "http://x", "urll": "typo"}),
    ];
    for settings in bad {
        assert!(WebhookType.validate(&settings, &ctx).is_err(), "{settings}");
    }
    let ok = WebhookType
        .validate(&serde_json::json!({"url": "https://example.com/x"}), &ctx)
        .unwrap();
    assert_eq!(
        ok,
        serde_json::json!({"url": "https://example.com/x", "headers": {}, "batchSize": 1, "timeoutMs": 10000})
    );
    let unknown = WebhookType
        .validate(&serde_json::json!({"url": "http://x", "urll": 1}), &ctx)
        .unwrap_err();
    assert!(unknown.contains("urll"), "{unknown}");
}

#[test]
fn retry_after_forms() {
    let mut h = HeaderMap::new();
    h.insert("retry-after", "120".parse().unwrap());
    assert_eq!(retry_after(&h), Some(Duration::from_secs(120)));
    h.insert(
        "retry-after",
        "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
    );
    assert_eq!(retry_after(&h), Some(Duration::from_secs(0)));
    h.insert("retry-after", "soon".parse().unwrap());
    assert_eq!(retry_after(&h), None);
}
