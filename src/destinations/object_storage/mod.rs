//! The `object_storage` destination: gzipped JSON lines in an S3-compatible bucket or a local
//! directory, partitioned by the hour events were received.
//!
//! # Objects
//!
//! Each delivered batch becomes one object per hour it covers:
//! `[<prefix>/]dt=2026-11-25/hour=14/<uuid v7>.jsonl.gz`, one event per line, as Sluice
//! stored it. The partition is the UTC hour the event was *received* (`receivedAt`), not the
//! hour it was written, so a backlog delivered late lands where its events belong.
//!
//! Objects are flushed by size and, in effect, by time: the delivery worker hands over what
//! the log holds for this destination, up to `batchSize` events, as soon as it is there. Under
//! load objects hold `batchSize` events; when traffic is light each holds what arrived since
//! the last one (down to a single event). Nothing waits in memory for a batch to fill up.
//!
//! # Retries write the same object
//!
//! The object name is a UUID v7 made from the first event of the object (its receive time and
//! a hash of its messageId and log position), not a random one: a batch written again after a
//! timeout or a crash replaces its earlier copy instead of duplicating it.
//!
//! # Durability
//!
//! An S3 PUT is atomic and durable when it answers. In a local directory the object is written
//! to a temporary file and renamed (by `object_store`), then the file and its directory are
//! `fsync`ed before the delivery is reported.
//!
//! # Consent
//!
//! Archival: destinations of this type do not enforce consent unless created with
//! `enforceConsent: true` (SPEC §1, as Segment does for S3).
//!
//! # Deletion
//!
//! `delete_people` reads every object under the prefix, drops the lines whose `userId` or
//! `anonymousId` is one of the people's, and writes the object back (or deletes it when
//! nothing is left). It reads the whole archive, so it is slow on large archives.

mod config;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use config::{LocalConfig, ObjectStorageConfig, S3Config};

use super::{
    BuildContext, DeletionError, DeliveryError, Destination, DestinationType, parse_settings,
};
use crate::log::Record;

pub struct ObjectStorageType;

impl DestinationType for ObjectStorageType {
    fn name(&self) -> &'static str {
        "object_storage"
    }

    fn description(&self) -> &'static str {
        "Gzipped JSON-lines objects in S3-compatible storage or a local directory, by date and hour"
    }

    fn enforce_consent_default(&self) -> bool {
        false
    }

    fn validate(&self, settings: &Value, ctx: &BuildContext) -> Result<Value, String> {
        let config: ObjectStorageConfig = parse_settings(self.name(), settings)?;
        config.validate()?;
        if let Some(local) = &config.local {
            super::file::resolve_path(&local.path, ctx)?;
        }
        serde_json::to_value(config).map_err(|e| e.to_string())
    }

    fn secret_paths(&self) -> &'static [&'static str] {
        &["/s3/secretAccessKey"]
    }

    fn build(&self, settings: &Value, ctx: &BuildContext) -> Result<Arc<dyn Destination>, String> {
        let config: ObjectStorageConfig = parse_settings(self.name(), settings)?;
        config.validate()?;
        Ok(Arc::new(ObjectStorage::new(&config, ctx)?))
    }
}

enum Backend {
    /// Opened on first use: the directory is created then.
    Local {
        root: PathBuf,
        store: tokio::sync::OnceCell<Arc<dyn ObjectStore>>,
    },
    S3(Arc<dyn ObjectStore>),
}

pub struct ObjectStorage {
    backend: Backend,
    prefix: Option<String>,
    batch_size: usize,
    /// `s3://bucket/prefix` or the local directory, for messages.
    describe: String,
}

impl ObjectStorage {
    pub fn new(config: &ObjectStorageConfig, ctx: &BuildContext) -> Result<ObjectStorage, String> {
        let (backend, prefix, describe) = match (&config.local, &config.s3) {
            (Some(local), _) => {
                let root = super::file::resolve_path(&local.path, ctx)?;
                let describe = root.display().to_string();
                let backend = Backend::Local {
                    root,
                    store: tokio::sync::OnceCell::new(),
                };
                (backend, None, describe)
            }
            (None, Some(s3)) => {
                let store = s3_store(s3)?;
                let prefix = s3
                    .prefix
                    .as_deref()
                    .map(|p| p.trim_matches('/').to_owned())
                    .filter(|p| !p.is_empty());
                let describe = match &prefix {
                    Some(p) => format!("s3://{}/{p}", s3.bucket),
                    None => format!("s3://{}", s3.bucket),
                };
                (Backend::S3(store), prefix, describe)
            }
            (None, None) => return Err("set one of local and s3".into()),
        };
        Ok(ObjectStorage {
            backend,
            prefix,
            batch_size: config.batch_size,
            describe,
        })
    }

    async fn store(&self) -> Result<Arc<dyn ObjectStore>, DeliveryError> {
        match &self.backend {
            Backend::S3(store) => Ok(Arc::clone(store)),
            Backend::Local { root, store } => store
                .get_or_try_init(|| async {
                    let root = root.clone();
                    tokio::task::spawn_blocking(move || {
                        std::fs::create_dir_all(&root).map_err(|e| {
                            DeliveryError::retryable(format!(
                                "creating directory {}: {e}",
                                root.display()
                            ))
                        })?;
                        let fs = LocalFileSystem::new_with_prefix(&root).map_err(|e| {
                            DeliveryError::retryable(format!(
                                "opening directory {}: {e}",
                                root.display()
                            ))
                        })?;
                        Ok::<Arc<dyn ObjectStore>, DeliveryError>(Arc::new(fs))
                    })
                    .await
                    .map_err(|e| DeliveryError::retryable(format!("directory task failed: {e}")))?
                })
                .await
                .cloned(),
        }
    }

    fn failure(&self, doing: &str, error: object_store::Error) -> DeliveryError {
        let message = format!("{doing} in {}: {}", self.describe, error_chain(&error));
        match error {
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => DeliveryError::permanent(message),
            object_store::Error::NotFound { .. } => {
                DeliveryError::permanent(format!("{message} (does the bucket exist?)"))
            }
            object_store::Error::InvalidPath { .. } => DeliveryError::permanent(message),
            _ => DeliveryError::retryable(message),
        }
    }

    /// Make a local object durable: the file, then the directory entries up to the root.
    async fn sync_local(&self, key: &str) -> Result<(), DeliveryError> {
        let Backend::Local { root, .. } = &self.backend else {
            return Ok(());
        };
        let root = root.clone();
        let file = root.join(key);
        tokio::task::spawn_blocking(move || {
            std::fs::File::open(&file)?.sync_all()?;
            let mut dir = file.parent();
            while let Some(d) = dir {
                std::fs::File::open(d)?.sync_all()?;
                if d == root {
                    break;
                }
                dir = d.parent();
            }
            Ok::<(), std::io::Error>(())
        })
        .await
        .map_err(|e| DeliveryError::retryable(format!("sync task failed: {e}")))?
        .map_err(|e| DeliveryError::retryable(format!("syncing {key}: {e}")))
    }

    async fn put(
        &self,
        store: &dyn ObjectStore,
        key: &str,
        body: Vec<u8>,
    ) -> Result<(), DeliveryError> {
        let path = ObjectPath::parse(key)
            .map_err(|e| DeliveryError::permanent(format!("object key {key:?}: {e}")))?;
        store
            .put(&path, PutPayload::from(body))
            .await
            .map_err(|e| self.failure(&format!("writing {key}"), e))?;
        self.sync_local(key).await
    }
}

fn s3_store(s3: &S3Config) -> Result<Arc<dyn ObjectStore>, String> {
    let mut builder = match (&s3.access_key_id, &s3.secret_access_key) {
        (Some(id), Some(secret)) => AmazonS3Builder::new()
            .with_access_key_id(id)
            .with_secret_access_key(secret),
        _ => AmazonS3Builder::from_env(),
    };
    builder = builder
        .with_bucket_name(&s3.bucket)
        .with_region(&s3.region)
        // The delivery worker retries with its own backoff; keep the client's retries short
        // so an unreachable store is reported within seconds.
        .with_retry(RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(30),
            ..RetryConfig::default()
        })
        .with_client_options(
            ClientOptions::new()
                .with_timeout(Duration::from_secs(60))
                .with_connect_timeout(Duration::from_secs(5)),
        );
    if let Some(endpoint) = &s3.endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    let store = builder
        .build()
        .map_err(|e| format!("the s3 settings are not usable: {e}"))?;
    Ok(Arc::new(store))
}

/// `dt=2026-11-25/hour=14` for a receive time in Unix ms (UTC).
pub fn partition(received_at_ms: i64) -> String {
    // `YYYY-MM-DDTHH:…`
    let stamp = crate::clock::format_ms(received_at_ms);
    format!("dt={}/hour={}", &stamp[..10], &stamp[11..13])
}

/// The object's name: a UUID v7 with the first event's receive time and, for the rest, a hash
/// of its messageId and log position, so writing the same batch again gives the same name.
pub fn object_name(first: &Record) -> String {
    let digest = Sha256::new()
        .chain_update(first.message_id.as_bytes())
        .chain_update(first.seq.to_be_bytes())
        .finalize();
    let mut bytes = [0u8; 10];
    bytes.copy_from_slice(&digest[..10]);
    let millis = u64::try_from(first.received_at).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &bytes)
        .into_uuid()
        .to_string()
}

/// `[<prefix>/]<partition>/<name>.jsonl.gz`.
pub fn object_key(prefix: Option<&str>, partition: &str, name: &str) -> String {
    match prefix {
        Some(prefix) => format!("{prefix}/{partition}/{name}.jsonl.gz"),
        None => format!("{partition}/{name}.jsonl.gz"),
    }
}

/// Gzip JSON lines.
pub fn gzip_lines<'a>(lines: impl Iterator<Item = &'a [u8]>) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for line in lines {
        encoder.write_all(line)?;
        encoder.write_all(b"\n")?;
    }
    encoder.finish()
}

/// An object's lines without the people's; `None` when none of its lines is theirs.
pub fn without_people(
    gz: &[u8],
    users: &HashSet<&str>,
    anons: &HashSet<&str>,
) -> std::io::Result<Option<(u64, Vec<u8>)>> {
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(gz).read_to_end(&mut text)?;
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut removed = 0;
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let theirs = serde_json::from_slice::<Value>(line).is_ok_and(|event| {
            let has = |field: &str, set: &HashSet<&str>| {
                event
                    .get(field)
                    .and_then(Value::as_str)
                    .is_some_and(|id| set.contains(id))
            };
            has("userId", users) || has("anonymousId", anons)
        });
        if theirs {
            removed += 1;
        } else {
            kept.push(line);
        }
    }
    if removed == 0 {
        return Ok(None);
    }
    let body = if kept.is_empty() {
        Vec::new()
    } else {
        gzip_lines(kept.into_iter())?
    };
    Ok(Some((removed, body)))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !out.contains(&next) {
            out.push_str(": ");
            out.push_str(&next);
        }
        source = s.source();
    }
    out
}

#[async_trait]
impl Destination for ObjectStorage {
    async fn deliver(&self, records: &[Record]) -> Result<(), DeliveryError> {
        if records.is_empty() {
            return Ok(());
        }
        let store = self.store().await?;
        let mut partitions: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
        for record in records {
            partitions
                .entry(partition(record.received_at))
                .or_default()
                .push(record);
        }
        for (partition, records) in partitions {
            let key = object_key(self.prefix.as_deref(), &partition, &object_name(records[0]));
            let payloads: Vec<Vec<u8>> = records.iter().map(|r| r.payload.clone()).collect();
            let body =
                tokio::task::spawn_blocking(move || gzip_lines(payloads.iter().map(Vec::as_slice)))
                    .await
                    .map_err(|e| DeliveryError::retryable(format!("compression task failed: {e}")))?
                    .map_err(|e| DeliveryError::retryable(format!("compressing {key}: {e}")))?;
            self.put(store.as_ref(), &key, body).await?;
        }
        Ok(())
    }

    fn max_batch(&self) -> usize {
        self.batch_size
    }

    async fn delete_people(
        &self,
        user_ids: &[String],
        anonymous_ids: &[String],
    ) -> Result<u64, DeletionError> {
        let failed = |e: DeliveryError| {
            DeletionError::Failed(match e {
                DeliveryError::Retryable { message, .. } | DeliveryError::Permanent { message } => {
                    message
                }
            })
        };
        let store = self.store().await.map_err(failed)?;
        let prefix = self.prefix.as_deref().map(ObjectPath::from);
        let mut listing = store.list(prefix.as_ref());
        let mut objects = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| failed(self.failure("listing objects", e)))?;
            if meta.location.as_ref().ends_with(".jsonl.gz") {
                objects.push(meta.location);
            }
        }
        let mut removed = 0;
        for location in objects {
            let key = location.to_string();
            let data = store
                .get(&location)
                .await
                .map_err(|e| failed(self.failure(&format!("reading {key}"), e)))?
                .bytes()
                .await
                .map_err(|e| failed(self.failure(&format!("reading {key}"), e)))?;
            let (users, anons) = (user_ids.to_vec(), anonymous_ids.to_vec());
            let filtered = tokio::task::spawn_blocking(move || {
                let users: HashSet<&str> = users.iter().map(String::as_str).collect();
                let anons: HashSet<&str> = anons.iter().map(String::as_str).collect();
                without_people(&data, &users, &anons)
            })
            .await
            .map_err(|e| DeletionError::Failed(format!("deletion task failed: {e}")))?
            .map_err(|e| DeletionError::Failed(format!("reading {key}: {e}")))?;
            let Some((count, body)) = filtered else {
                continue;
            };
            if body.is_empty() {
                store
                    .delete(&location)
                    .await
                    .map_err(|e| failed(self.failure(&format!("deleting {key}"), e)))?;
            } else {
                self.put(store.as_ref(), &key, body).await.map_err(failed)?;
            }
            removed += count;
        }
        Ok(removed)
    }
}
