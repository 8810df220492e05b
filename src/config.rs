//! The process configuration: one typed tree, layered defaults → file → environment → flags,
//! validated completely before anything starts.
//!
//! Environment variables use the `SLUICE_` prefix and `__` between sections, e.g.
//! `SLUICE_DELIVERY__MAX_ATTEMPTS=5` or `SLUICE_SERVER__PUBLIC_URL=https://events.example.com`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub delivery: DeliveryConfig,
    pub audit: AuditConfig,
    pub retl: RetlConfig,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetlConfig {
    /// Absolute directories SQLite warehouse files may be read from, besides
    /// `<data-dir>/warehouses`. Sluice's own data directory is never readable.
    pub sqlite_allowed_dirs: Vec<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Audit entries older than this many days are deleted (checked hourly).
    pub retention_days: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { retention_days: 90 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The URL clients reach this server at (e.g. `https://events.example.com`); used in the
    /// CDN settings document and printed URLs. Defaults to `http://<listen>`.
    pub public_url: Option<String>,
    /// Peers whose `X-Forwarded-For` header is trusted for `context.ip`, as addresses or
    /// CIDR ranges (e.g. `10.0.0.0/8`).
    pub trusted_proxies: Vec<String>,
    /// Most concurrent HTTP requests (beyond this, new ones wait).
    pub max_concurrent_requests: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory of the embedded store (`control.db`, `log.db`, file destinations).
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Attempts per batch before it goes to the dead-letter store.
    pub max_attempts: u32,
    /// First retry delay (exponential backoff with full jitter), milliseconds.
    pub backoff_base_ms: u64,
    /// Longest retry delay, milliseconds. A `Retry-After` longer than this is honoured up to
    /// one hour.
    pub backoff_max_ms: u64,
    /// Absolute directories file destinations may write to, besides `<data-dir>/files`.
    pub file_allowed_dirs: Vec<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            trusted_proxies: Vec::new(),
            max_concurrent_requests: 4096,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("sluice-data"),
        }
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            max_attempts: 10,
            backoff_base_ms: 500,
            backoff_max_ms: 60_000,
            file_allowed_dirs: Vec::new(),
        }
    }
}

/// A parsed trusted-proxy entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    net: ipnet::IpNet,
}

impl IpRange {
    pub fn parse(s: &str) -> Result<IpRange, String> {
        if let Ok(net) = s.parse::<ipnet::IpNet>() {
            return Ok(IpRange { net });
        }
        s.parse::<IpAddr>()
            .map(|ip| IpRange {
                net: ipnet::IpNet::from(ip),
            })
            .map_err(|_| format!("{s:?} is neither an IP address nor a CIDR range"))
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.net.contains(ip)
    }
}

impl Config {
    /// Layer defaults, the optional TOML file and `SLUICE_*__*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Config, String> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(format!("config file {} does not exist", file.display()));
            }
            figment = figment.merge(Toml::file(file));
        }
        // Only section variables (`SLUICE_SECTION__FIELD`); single-word ones such as
        // SLUICE_BOOTSTRAP_OWNER_TOKEN are not configuration fields.
        figment = figment.merge(
            Env::prefixed("SLUICE_")
                .filter(|key| key.as_str().contains("__"))
                .split("__"),
        );
        figment
            .extract()
            .map_err(|e| format!("invalid configuration: {e}"))
    }

    /// Check everything that can be checked before starting.
    pub fn validate(&self) -> Result<(), String> {
        self.trusted_proxies()?;
        if let Some(url) = &self.server.public_url {
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| format!("server.public_url {url:?} is not a URL: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                return Err(format!(
                    "server.public_url must look like https://events.example.com (got {url:?})"
                ));
            }
        }
        if self.delivery.max_attempts == 0 {
            return Err("delivery.max_attempts must be at least 1".into());
        }
        if self.delivery.backoff_base_ms == 0
            || self.delivery.backoff_max_ms < self.delivery.backoff_base_ms
        {
            return Err(
                "delivery.backoff_base_ms must be positive and at most delivery.backoff_max_ms"
                    .into(),
            );
        }
        if self.audit.retention_days == 0 {
            return Err("audit.retention_days must be at least 1".into());
        }
        if self.server.max_concurrent_requests == 0 {
            return Err("server.max_concurrent_requests must be at least 1".into());
        }
        for dir in &self.delivery.file_allowed_dirs {
            if dir.is_relative() {
                return Err(format!(
                    "delivery.file_allowed_dirs entries must be absolute (got {})",
                    dir.display()
                ));
            }
        }
        Ok(())
    }

    pub fn trusted_proxies(&self) -> Result<Vec<IpRange>, String> {
        self.server
            .trusted_proxies
            .iter()
            .map(|s| IpRange::parse(s).map_err(|e| format!("server.trusted_proxies: {e}")))
            .collect()
    }

    /// The public base URL, without a trailing slash.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        match &self.server.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{bound}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_are_named() {
        let config = Config::default();
        assert!(config.validate().is_ok());
        let mut bad = Config::default();
        bad.server.trusted_proxies = vec!["10.0.0.0/8".into(), "nope".into()];
        assert!(bad.validate().unwrap_err().contains("nope"));
        let mut bad = Config::default();
        bad.server.public_url = Some("events.example.com".into());
        assert!(bad.validate().unwrap_err().contains("public_url"));
        let ranges = Config {
            server: ServerConfig {
                trusted_proxies: vec!["10.0.0.0/8".into(), "::1".into()],
                ..ServerConfig::default()
            },
            ..Config::default()
        }
        .trusted_proxies()
        .unwrap();
        assert!(ranges[0].contains(&"10.1.2.3".parse().unwrap()));
        assert!(!ranges[0].contains(&"11.1.2.3".parse().unwrap()));
        assert!(ranges[1].contains(&"::1".parse().unwrap()));
    }

    #[test]
    fn file_layer_rejects_unknown_fields_with_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(&path, "[delivery]\nmax_attempts = 3\n").unwrap();
        assert_eq!(Config::load(Some(&path)).unwrap().delivery.max_attempts, 3);
        std::fs::write(&path, "[delivery]\nmax_attempt = 3\n").unwrap();
        assert!(
            Config::load(Some(&path))
                .unwrap_err()
                .contains("max_attempt")
        );
    }
}
