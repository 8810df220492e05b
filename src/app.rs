//! The running application: the handles every request handler shares.
//!
//! [`App::open`] opens the embedded store, runs first-start bootstrap and starts delivery;
//! `server::serve` puts it behind HTTP. Configuration changes go through
//! [`App::change_config`], which serialises them and rebuilds the routing snapshot before it
//! returns, so the next accepted event sees the change.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::{Mutex, MutexGuard};

use crate::config::{Config, IpRange};
use crate::delivery::Supervisor;
use crate::destinations::BuildContext;
use crate::log::sqlite::SqliteLog;
use crate::log::{Consumer, EventLog};
use crate::router::Snapshot;
use crate::store::{ControlStore, NewSource, StoreError};

/// What first start created, to be printed once.
#[derive(Debug, Clone)]
pub struct FirstStart {
    pub owner_token: String,
    /// Whether the token came from `SLUICE_BOOTSTRAP_OWNER_TOKEN` (then it is not printed).
    pub token_from_env: bool,
    pub source_write_key: String,
    /// The console password of `owner@localhost`.
    pub owner_password: String,
}

pub struct App {
    pub config: Config,
    pub store: ControlStore,
    pub log: Arc<dyn EventLog>,
    pub delivery: Supervisor,
    pub trusted_proxies: Vec<IpRange>,
    pub build_ctx: BuildContext,
    pub metrics: Option<PrometheusHandle>,
    pub profiles: crate::profiles::ProfileStore,
    /// Live tail of accepted events per source.
    pub debugger: Arc<crate::debugger::Hub>,
    /// Reverse ETL: warehouse models synced into the pipeline (`retl.db`).
    pub retl: crate::retl::Retl,
    /// Set once the listener is bound (`public_url` may depend on the bound port).
    public_url: std::sync::OnceLock<String>,
    snapshot: ArcSwap<Snapshot>,
    config_lock: Mutex<()>,
    /// Stops background tasks (audit retention, the profile consumer) on shutdown.
    background: tokio_util::sync::CancellationToken,
    background_tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// Held while changing configuration; `App::reload` must be called before it is dropped.
pub struct ConfigChange<'a> {
    _guard: MutexGuard<'a, ()>,
}

impl App {
    /// Where reverse ETL may read SQLite warehouse files.
    pub fn sqlite_roots(&self) -> crate::retl::warehouse::SqliteRoots {
        crate::retl::warehouse::SqliteRoots::new(
            &self.config.storage.data_dir,
            &self.config.retl.sqlite_allowed_dirs,
        )
    }

    /// Open the store in `config.storage.data_dir`, bootstrap on first start, start delivery.
    pub async fn open(
        config: Config,
        bootstrap_token: Option<String>,
        metrics: Option<PrometheusHandle>,
    ) -> anyhow::Result<(Arc<App>, Option<FirstStart>)> {
        config.validate().map_err(anyhow::Error::msg)?;
        let data_dir = config.storage.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the data directory {}: {e}",
                data_dir.display()
            )
        })?;
        let store = ControlStore::open(&data_dir.join("control.db")).map_err(|e| {
            anyhow::anyhow!("cannot open {}: {e}", data_dir.join("control.db").display())
        })?;

        let token_from_env = bootstrap_token.is_some();
        // Only hash a first password when there is nobody yet (argon2 is deliberately slow).
        let owner_password = crate::store::new_secret(20);
        let password_hash = if store.user_count().await? == 0 {
            Some(
                crate::admin::hash_password(owner_password.clone())
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message))?,
            )
        } else {
            None
        };
        let first_start = match store
            .bootstrap_owner(bootstrap_token, password_hash)
            .await?
        {
            Some(owner_token) => {
                let source = store
                    .create_source(
                        NewSource {
                            name: "Default source".into(),
                            rate_limit_per_second: None,
                            missing_consent_policy: None,
                            write_key: None,
                        },
                        &crate::store::Actor::system(),
                    )
                    .await?;
                Some(FirstStart {
                    owner_token,
                    token_from_env,
                    source_write_key: source.write_key,
                    owner_password,
                })
            }
            None => None,
        };

        let workspace = store.workspace().await?;
        let log: Arc<dyn EventLog> = Arc::new(
            SqliteLog::open(
                &data_dir.join("log.db"),
                i64::from(workspace.dedup_window_hours) * 3_600_000,
            )
            .map_err(|e| {
                anyhow::anyhow!("cannot open {}: {e}", data_dir.join("log.db").display())
            })?,
        );
        let build_ctx = BuildContext {
            files_dir: absolute(data_dir.join("files")),
            allowed_file_dirs: config.delivery.file_allowed_dirs.clone(),
        };
        let trusted_proxies = config.trusted_proxies().map_err(anyhow::Error::msg)?;
        let profiles =
            crate::profiles::ProfileStore::open(&data_dir.join("profiles.db")).map_err(|e| {
                anyhow::anyhow!(
                    "cannot open {}: {e}",
                    data_dir.join("profiles.db").display()
                )
            })?;
        let retl = crate::retl::Retl::open(&data_dir.join("retl.db")).map_err(|e| {
            anyhow::anyhow!("cannot open {}: {e}", data_dir.join("retl.db").display())
        })?;
        let app = Arc::new(App {
            delivery: Supervisor::new(Arc::clone(&log), config.delivery.clone(), build_ctx.clone()),
            config,
            store,
            log,
            trusted_proxies,
            build_ctx,
            metrics,
            profiles: profiles.clone(),
            debugger: Arc::default(),
            retl,
            public_url: std::sync::OnceLock::new(),
            snapshot: ArcSwap::from_pointee(Snapshot::empty()),
            config_lock: Mutex::new(()),
            background: tokio_util::sync::CancellationToken::new(),
            background_tasks: Mutex::new(Vec::new()),
        });
        app.reload().await?;
        tokio::spawn(prune_audit_hourly(Arc::clone(&app)));
        app.background_tasks
            .lock()
            .await
            .push(crate::profiles::consumer::spawn(Arc::clone(&app), profiles));
        app.background_tasks
            .lock()
            .await
            .push(crate::retl::spawn_scheduler(Arc::clone(&app)));
        Ok((app, first_start))
    }

    /// The current routing snapshot (one atomic load).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Serialise configuration changes. Hold the returned guard across the store change and
    /// the following [`App::reload`].
    pub async fn change_config(&self) -> ConfigChange<'_> {
        ConfigChange {
            _guard: self.config_lock.lock().await,
        }
    }

    /// Rebuild the snapshot from the store, swap it in, and match delivery workers to it.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let data = self.store.load().await?;
        // Destinations get their log cursor before the first event is routed to them, so no
        // event routed to a new destination can fall behind its cursor.
        for dest in &data.destinations {
            if let Err(error) = self.log.cursor(&Consumer::Destination(dest.key)).await {
                return Err(StoreError::Storage(error.to_string()));
            }
        }
        let previous = self.snapshot.load_full();
        let snapshot = Arc::new(Snapshot::build(data, &previous));
        self.log
            .set_dedup_window(i64::from(snapshot.workspace.dedup_window_hours) * 3_600_000);
        self.snapshot.store(Arc::clone(&snapshot));
        self.delivery.reconcile(&snapshot.destinations).await;
        Ok(())
    }

    pub fn set_public_url(&self, url: String) {
        let _ = self.public_url.set(url);
    }

    /// The base URL clients reach this server at.
    pub fn public_url(&self) -> String {
        self.public_url
            .get()
            .cloned()
            .unwrap_or_else(|| self.config.public_url(self.config.server.listen))
    }

    /// Stop delivery (letting in-flight work finish) and close the log.
    /// Cancelled when the app shuts down; background tasks stop on it.
    pub fn background_token(&self) -> tokio_util::sync::CancellationToken {
        self.background.clone()
    }

    pub async fn shutdown(&self) {
        self.background.cancel();
        for task in self.background_tasks.lock().await.drain(..) {
            let _ = task.await;
        }
        self.delivery.shutdown().await;
        self.log.close().await;
    }
}

/// Delete audit entries older than the retention period, at start and every hour.
async fn prune_audit_hourly(app: Arc<App>) {
    let retention_ms = i64::from(app.config.audit.retention_days) * 86_400_000;
    loop {
        match app
            .store
            .prune_audit(crate::clock::now_ms() - retention_ms)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "Pruned audit entries past their retention."),
            Err(error) => {
                tracing::warn!(%error, "Pruning the audit trail failed; will retry in an hour.")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(3_600)) => {}
            () = app.background.cancelled() => return,
        }
    }
}

fn absolute(path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(&path))
            .unwrap_or(path)
    }
}
