//! The `file` destination: JSON lines appended to a local file, rotated by size.
//!
//! Each batch is written with one `write` and made durable with `fdatasync` before delivery is
//! reported, so an acknowledged delivery survives a crash. Writes happen on a blocking thread.
//!
//! Deletion (GDPR requests) rewrites the file and its rotated siblings without the lines of the
//! people concerned. Every instance writing a path shares one open-file slot (a process-wide
//! registry), so a rewrite and a delivery never interleave and no append lands in a replaced
//! file.

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
            file: slot_for(&path),
            path,
            rotate_bytes: config.rotate_bytes,
            batch_size: config.batch_size,
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

/// The open file of a path, shared by every instance that writes it.
type Slot = Arc<Mutex<Option<(File, u64)>>>;

fn slot_for(path: &Path) -> Slot {
    static SLOTS: std::sync::OnceLock<Mutex<std::collections::HashMap<PathBuf, Slot>>> =
        std::sync::OnceLock::new();
    let slots = SLOTS.get_or_init(Default::default);
    let mut slots = slots.lock().unwrap_or_else(|p| p.into_inner());
    Arc::clone(slots.entry(path.to_owned()).or_default())
}

/// Whether a JSON line belongs to one of these people.
fn line_matches(
    line: &[u8],
    users: &std::collections::HashSet<&str>,
    anons: &std::collections::HashSet<&str>,
) -> bool {
    let Ok(event) = serde_json::from_slice::<Value>(line) else {
        return false;
    };
    event
        .get("userId")
        .and_then(Value::as_str)
        .is_some_and(|u| users.contains(u))
        || event
            .get("anonymousId")
            .and_then(Value::as_str)
            .is_some_and(|a| anons.contains(a))
}

/// Rewrite one file without the matching lines; returns how many were removed.
fn rewrite_without(
    file: &Path,
    users: &std::collections::HashSet<&str>,
    anons: &std::collections::HashSet<&str>,
) -> std::io::Result<u64> {
    let content = match std::fs::read(file) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut kept = Vec::with_capacity(content.len());
    let mut removed = 0;
    for line in content.split_inclusive(|b| *b == b'\n') {
        let trimmed = line.strip_suffix(b"\n").unwrap_or(line);
        if !trimmed.is_empty() && line_matches(trimmed, users, anons) {
            removed += 1;
        } else {
            kept.extend_from_slice(line);
        }
    }
    if removed == 0 {
        return Ok(0);
    }
    let mut temp = file.as_os_str().to_owned();
    temp.push(".rewrite");
    let temp = PathBuf::from(temp);
    {
        let mut out = File::create(&temp)?;
        out.write_all(&kept)?;
        out.sync_all()?;
    }
    std::fs::rename(&temp, file)?;
    Ok(removed)
}

pub struct FileDestination {
    path: PathBuf,
    rotate_bytes: u64,
    batch_size: usize,
    /// The open file and its current size, shared by every instance writing `path`.
    file: Slot,
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

    async fn delete_people(
        &self,
        user_ids: &[String],
        anonymous_ids: &[String],
    ) -> Result<u64, super::DeletionError> {
        let (file, path) = (Arc::clone(&self.file), self.path.clone());
        let (user_ids, anonymous_ids) = (user_ids.to_vec(), anonymous_ids.to_vec());
        tokio::task::spawn_blocking(move || {
            let users = user_ids.iter().map(String::as_str).collect();
            let anons = anonymous_ids.iter().map(String::as_str).collect();
            // Hold the slot: no delivery appends while the files are rewritten.
            let mut slot = file.lock().unwrap_or_else(|p| p.into_inner());
            *slot = None;
            let mut removed = 0;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let mut files = vec![path.clone()];
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for entry in entries.flatten() {
                    let other = entry.file_name().to_string_lossy().into_owned();
                    if other.starts_with(&format!("{name}.")) && !other.ends_with(".rewrite") {
                        files.push(entry.path());
                    }
                }
            }
            for file in files {
                removed += rewrite_without(&file, &users, &anons).map_err(|e| {
                    super::DeletionError::Failed(format!("rewriting {}: {e}", file.display()))
                })?;
            }
            Ok(removed)
        })
        .await
        .map_err(|e| super::DeletionError::Failed(format!("deletion task failed: {e}")))?
    }
}
