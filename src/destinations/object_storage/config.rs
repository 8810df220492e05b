//! Settings of the `object_storage` destination.

use serde::{Deserialize, Serialize};

/// Largest `batchSize`.
pub const MAX_BATCH_SIZE: usize = 10_000;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectStorageConfig {
    /// Write to a local directory. Exactly one of `local` and `s3` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalConfig>,
    /// Write to an S3-compatible bucket (AWS S3, MinIO, Cloudflare R2, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Config>,
    /// Most events per object (default 1000). Each delivered batch becomes one object per
    /// hour partition it covers; a batch is as large as the backlog allows, up to this size.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalConfig {
    /// The directory objects are written under. A relative path is under `<data-dir>/files/`;
    /// an absolute one must be under that directory or one listed in
    /// `delivery.file_allowed_dirs` (the rules of the `file` destination).
    pub path: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct S3Config {
    /// The bucket; it must exist.
    pub bucket: String,
    /// The bucket's region (default `us-east-1`).
    #[serde(default = "default_region")]
    pub region: String,
    /// The service URL for S3-compatible stores, e.g. `http://127.0.0.1:9000` for MinIO;
    /// omitted for AWS. Requests use path-style addressing (`<endpoint>/<bucket>/<key>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Access key id. Omit both keys to use the credentials of the environment
    /// (`AWS_ACCESS_KEY_ID`, an instance profile, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// Secret access key (a secret: shown as `********` on read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    /// Key prefix inside the bucket, e.g. `segment-logs`; objects are written under
    /// `<prefix>/dt=…/hour=…/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

fn default_batch_size() -> usize {
    1_000
}

fn default_region() -> String {
    "us-east-1".into()
}

impl ObjectStorageConfig {
    pub fn validate(&self) -> Result<(), String> {
        match (&self.local, &self.s3) {
            (Some(local), None) => {
                if local.path.trim().is_empty() {
                    return Err("local.path must not be empty".into());
                }
            }
            (None, Some(s3)) => s3.validate()?,
            _ => {
                return Err(
                    "set exactly one of local ({\"path\": …}) and s3 ({\"bucket\": …, …})".into(),
                );
            }
        }
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(format!("batchSize must be between 1 and {MAX_BATCH_SIZE}"));
        }
        Ok(())
    }
}

impl S3Config {
    fn validate(&self) -> Result<(), String> {
        let valid_bucket = (3..=63).contains(&self.bucket.len())
            && self
                .bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'));
        if !valid_bucket {
            return Err(format!(
                "s3.bucket {:?} is not a valid bucket name (3 to 63 lower-case letters, digits, '-' or '.')",
                self.bucket
            ));
        }
        if self.region.trim().is_empty() {
            return Err("s3.region must not be empty".into());
        }
        if let Some(endpoint) = &self.endpoint {
            let url = reqwest::Url::parse(endpoint)
                .map_err(|e| format!("s3.endpoint {endpoint:?} is not a valid URL: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err("s3.endpoint must start with http:// or https://".into());
            }
        }
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => {}
            (None, None) => {}
            _ => {
                return Err(
                    "set both s3.accessKeyId and s3.secretAccessKey, or neither to use the environment's credentials"
                        .into(),
                );
            }
        }
        if let Some(prefix) = &self.prefix
            && prefix.split('/').any(|part| part == "." || part == "..")
        {
            return Err("s3.prefix must not contain '.' or '..' segments".into());
        }
        Ok(())
    }
}
