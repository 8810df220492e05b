//! The `file` destination: JSON lines appended to a local file, rotated by size.
//!
//! Each batch is written with one `write` and made durable with `fdatasync` before delivery is
//! reported, so an acknowledged delivery survives a crash. Writes happen on a blocking thread.

mod config;
#[cfg(test)]
mod tests;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::Value;

pub use config::FileConfig;

use super::{BuildContext, DeliveryError, Destination, DestinationType, parse_settings};
use crate::log::Record;

pub struct FileType;

impl DestinationType for FileType {
    fn name(&self) -> &'static str {
        "file"
    }

    fn description(&self) -> &'static str {
        "JSON lines appended to a local file, rotated by size"
    }

    fn validate(&self, settings: &Value, ctx: &BuildContext) -> Result<Value, String> {
        let config: FileConfig = parse_settings(self.name(), settings)?;
        config.validate()?;
        resolve_path(&config.path, ctx)?;
        serde_json::to_value(config).map_err(|e| e.to_string())
    }

    fn secret_paths(&self) -> &'static [&'static str] {
        &[]
    }

    fn build(&self, settings: &Value, ctx: &BuildContext) -> Result<Arc<dyn Destination>, String> {
        let config: FileConfig = parse_settings(self.name(), settings)?;
        config.validate()?;
        let path = resolve_path(&config.path, ctx)?;
        Ok(Arc::new(FileDestination {
            path,
            rotate_bytes: config.rotate_bytes,
            batch_size: config.batch_size,
            file: Arc::new(Mutex::new(None)),
        }))
    }
}

/// Where a configured path really points, refusing paths outside the allowed directories.
pub fn resolve_path(path: &str, ctx: &BuildContext) -> Result<PathBuf, String> {
    let given = Path::new(path);
    if given
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(format!("path {path:?} must not contain '..'"));
    }
    if given.is_relative() {
        return Ok(ctx.files_dir.join(given));
    }
    let allowed = std::iter::once(&ctx.files_dir).chain(ctx.allowed_file_dirs.iter());
    if allowed.clone().any(|dir| given.starts_with(dir)) {
        Ok(given.to_owned())
    } else {
        let dirs: Vec<String> = allowed.map(|d| d.display().to_string()).collect();
        Err(format!(
            "path {path:?} is outside the directories file destinations may write to ({}); \
             use a relative path, or add the directory to delivery.file_allowed_dirs",
            dirs.join(", ")
        ))
    }
}

pub struct FileDestination {
    path: PathBuf,
    rotate_bytes: u64,
    batch_size: usize,
    /// The open file and its current size.
    file: Arc<Mutex<Option<(File, u64)>>>,
}

fn open(path: &Path) -> std::io::Result<(File, u64)> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let len = file.metadata()?.len();
    Ok((file, len))
}

fn rotated_name(path: &Path) -> PathBuf {
    let stamp = crate::clock::format_ms(crate::clock::now_ms()).replace([':', '-', '.'], "");
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{stamp}"));
    let mut candidate = PathBuf::from(&name);
    let mut n = 1;
    while candidate.exists() {
        let mut with_n = name.clone();
        with_n.push(format!("-{n}"));
        candidate = PathBuf::from(with_n);
        n += 1;
    }
    candidate
}

fn write_batch(
    slot: &mut Option<(File, u64)>,
    path: &Path,
    rotate_bytes: u64,
    body: &[u8],
) -> std::io::Result<()> {
    if slot.is_none() {
        *slot = Some(open(path)?);
    }
    let (file, len) = slot.as_mut().expect("opened above");
    if *len > 0 && *len + body.len() as u64 > rotate_bytes {
        file.sync_all()?;
        std::fs::rename(path, rotated_name(path))?;
        *slot = Some(open(path)?);
    }
    let (file, len) = slot.as_mut().expect("opened above");
    file.write_all(body)?;
    file.sync_data()?;
    *len += body.len() as u64;
    Ok(())
}

#[async_trait]
impl Destination for FileDestination {
    async fn deliver(&self, records: &[Record]) -> Result<(), DeliveryError> {
        let mut body = Vec::with_capacity(records.iter().map(|r| r.payload.len() + 1).sum());
        for record in records {
            body.extend_from_slice(&record.payload);
            body.push(b'\n');
        }
        let file = Arc::clone(&self.file);
        let path = self.path.clone();
        let rotate_bytes = self.rotate_bytes;
        tokio::task::spawn_blocking(move || {
            let mut slot = file.lock().unwrap_or_else(|p| p.into_inner());
            write_batch(&mut slot, &path, rotate_bytes, &body).map_err(|e| {
                // Forget the handle: the next attempt reopens the file from scratch.
                *slot = None;
                DeliveryError::retryable(format!("writing {}: {e}", path.display()))
            })
        })
        .await
        .map_err(|e| DeliveryError::retryable(format!("file writer task failed: {e}")))?
    }

    fn max_batch(&self) -> usize {
        self.batch_size
    }
}
