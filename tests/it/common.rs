//! Test helpers: a real server on an ephemeral port with its own data directory, an HTTP
//! receiver that records what destinations get, and small polling utilities.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use sluice::app::App;
use sluice::config::Config;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const OWNER_TOKEN: &str = "test-owner-token-0123456789";

/// A running server.
pub struct TestServer {
    pub url: String,
    pub app: Arc<App>,
    pub write_key: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    join: Option<JoinHandle<anyhow::Result<()>>>,
    pub dir: Arc<tempfile::TempDir>,
}

/// Fast retries for tests.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.storage.data_dir = dir.to_owned();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.delivery.backoff_base_ms = 20;
    config.delivery.backoff_max_ms = 100;
    config.delivery.max_attempts = 4;
    // The test warehouses are SQLite files in temporary directories.
    config.retl.sqlite_allowed_dirs = vec![std::env::temp_dir()];
    config
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let mut config = test_config(dir.path());
        adjust(&mut config);
        Self::start_in(dir, config).await
    }

    /// Start on an existing data directory (for restarts).
    pub async fn start_in(dir: Arc<tempfile::TempDir>, config: Config) -> TestServer {
        let (app, first) = App::open(config, Some(OWNER_TOKEN.to_owned()), None)
            .await
            .expect("app opens");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        let join = tokio::spawn(sluice::server::serve(
            Arc::clone(&app),
            listener,
            async move { signal.cancelled().await },
        ));
        let url = format!("http://{addr}");
        let http = reqwest::Client::new();
        let write_key = match first {
            Some(first) => first.source_write_key,
            None => {
                let sources: Value = http
                    .get(format!("{url}/api/v1/sources"))
                    .bearer_auth(OWNER_TOKEN)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                sources[0]["writeKey"].as_str().unwrap().to_owned()
            }
        };
        TestServer {
            url,
            app,
            write_key,
            http,
            shutdown,
            join: Some(join),
            dir,
        }
    }

    /// Graceful shutdown; returns the data directory for a restart.
    pub async fn stop(mut self) -> Arc<tempfile::TempDir> {
        self.shutdown.cancel();
        if let Some(join) = self.join.take() {
            join.await.expect("server task").expect("server ran");
        }
        Arc::clone(&self.dir)
    }

    /// POST to the Tracking API with Basic auth.
    pub async fn track_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        self.send_tracking(path, body, Some(&self.write_key.clone()), &[])
            .await
    }

    pub async fn send_tracking(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
        write_key: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request = self.http.post(format!("{}{path}", self.url)).body(body);
        if let Some(key) = write_key {
            request = request.basic_auth(key, Some(""));
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.expect("tracking request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn track(&self, path: &str, body: Value) -> (u16, Value) {
        self.track_raw(path, body.to_string()).await
    }

    /// Call the admin API as the owner.
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.admin_as(OWNER_TOKEN, method, path, body).await
    }

    pub async fn admin_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("admin request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Create something through the admin API and return its id (panics unless 201).
    pub async fn create(&self, path: &str, body: Value) -> String {
        let (status, answer) = self.admin("POST", path, Some(body)).await;
        assert_eq!(status, 201, "POST {path}: {answer}");
        answer["id"].as_str().unwrap().to_owned()
    }

    pub async fn webhook(&self, name: &str, integration: &str, url: &str, extra: Value) -> String {
        let mut settings = json!({"url": url});
        settings
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        self.create(
            "/api/v1/destinations",
            json!({"name": name, "integration": integration, "type": "webhook", "settings": settings}),
        )
        .await
    }

    pub async fn overview(&self, query: &str) -> Value {
        let (status, answer) = self
            .admin("GET", &format!("/api/v1/delivery-overview{query}"), None)
            .await;
        assert_eq!(status, 200, "{answer}");
        answer
    }
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Got {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Got {
    /// The events in the body: the event itself, or the items of `{"batch": [...]}`.
    pub fn events(&self) -> Vec<Value> {
        match self.body.get("batch").and_then(Value::as_array) {
            Some(items) => items.clone(),
            None => vec![self.body.clone()],
        }
    }
}

/// An HTTP server that records requests and answers with a programmable status.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Got>>>,
    /// Statuses to answer with, in turn; the last one repeats.
    statuses: Arc<Mutex<Vec<u16>>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let statuses = Arc::new(Mutex::new(vec![200]));
        let (g, s) = (Arc::clone(&got), Arc::clone(&statuses));
        let app = Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let (g, s) = (Arc::clone(&g), Arc::clone(&s));
                async move {
                    let status = {
                        let mut s = s.lock().unwrap();
                        if s.len() > 1 { s.remove(0) } else { s[0] }
                    };
                    if status == 200 {
                        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        g.lock().unwrap().push(Got {
                            path: uri.path().to_owned(),
                            headers,
                            body,
                        });
                    }
                    (StatusCode::from_u16(status).unwrap(), "ok").into_response()
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, got, statuses }
    }

    pub fn answer_with(&self, statuses: Vec<u16>) {
        *self.statuses.lock().unwrap() = statuses;
    }

    pub fn requests(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// The consent-update events Sluice generated that reached `path`.
    pub fn generated_at(&self, path: &str) -> Vec<Value> {
        self.requests()
            .iter()
            .filter(|g| g.path == path)
            .flat_map(Got::events)
            .filter(is_generated)
            .collect()
    }

    /// Every event received, in order.
    pub fn events(&self) -> Vec<Value> {
        self.requests().iter().flat_map(Got::events).collect()
    }

    /// The `event`/`type` names of events received on `path`, leaving out the consent-update
    /// events Sluice generates itself (see `generated_at`).
    pub fn names_at(&self, path: &str) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|g| g.path == path)
            .flat_map(Got::events)
            .filter(|e| !is_generated(e))
            .map(|e| {
                e["event"]
                    .as_str()
                    .or(e["type"].as_str())
                    .unwrap_or("?")
                    .to_owned()
            })
            .collect()
    }
}

/// Whether an event is a consent-update event Sluice generated.
pub fn is_generated(event: &Value) -> bool {
    event.pointer("/context/sluice/generated") == Some(&Value::Bool(true))
}

/// Poll `check` until it returns `Some`, or fail after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A track event with consent preferences.
pub fn consented(event: &str, user: &str, prefs: Value) -> Value {
    json!({"userId": user, "event": event, "context": {"consent": {"categoryPreferences": prefs}}})
}
