//! Settings of the `file` destination.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileConfig {
    /// File to append JSON lines to. A relative path is under `<data-dir>/files/`; an absolute
    /// path must be under that directory or one listed in `delivery.file_allowed_dirs`.
    pub path: String,
    /// Rotate when the file reaches this many bytes (default 100 MiB). The full file is renamed
    /// to `<path>.<UTC timestamp>` and a new one is started.
    #[serde(default = "default_rotate_bytes")]
    pub rotate_bytes: u64,
    /// Events written per batch (default 500).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
}

fn default_rotate_bytes() -> u64 {
    100 * 1024 * 1024
}

fn default_batch_size() -> usize {
    500
}

impl FileConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.path.trim().is_empty() {
            return Err("path must not be empty".into());
        }
        if self.rotate_bytes < 1024 {
            return Err("rotateBytes must be at least 1024".into());
        }
        if !(1..=10_000).contains(&self.batch_size) {
            return Err("batchSize must be between 1 and 10000".into());
        }
        Ok(())
    }
}
