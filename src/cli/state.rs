//! The workspace as a server has it, read through the admin API, and its conversion to a
//! workspace file (`sluice export`).
//!
//! Export writes what the API shows: secrets stay `********` (which `apply` reads as "keep the
//! stored secret"), settings include the defaults the server filled in, and categories name
//! their destinations instead of using ids. Because sources and destinations are identified by
//! name in the file, export refuses a server where two of them share a name.

use std::collections::{HashMap, HashSet};

use super::client::{Category, Client, ClientError, Destination, Source, Workspace};
use super::workspace_file::{
    CategorySpec, DestinationSpec, SourceSpec, WorkspaceFile, WorkspaceSettings,
};

/// Everything `export` and `apply` need from the server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerState {
    pub workspace: Workspace,
    pub sources: Vec<Source>,
    pub destinations: Vec<Destination>,
    pub categories: Vec<Category>,
}

impl ServerState {
    /// Read the workspace, sources, destinations and categories.
    pub async fn fetch(client: &Client) -> Result<ServerState, ClientError> {
        Ok(ServerState {
            workspace: client.get("/api/v1/workspace").await?,
            sources: client.get("/api/v1/sources").await?,
            destinations: client.get("/api/v1/destinations").await?,
            categories: client.get("/api/v1/consent/categories").await?,
        })
    }

    /// Destination names by id.
    pub fn destination_names(&self) -> HashMap<&str, &str> {
        self.destinations
            .iter()
            .map(|d| (d.id.as_str(), d.name.as_str()))
            .collect()
    }

    /// The workspace file describing this state.
    pub fn to_file(&self) -> Result<WorkspaceFile, String> {
        let mut seen = HashSet::new();
        for s in &self.sources {
            if !seen.insert(s.name.as_str()) {
                return Err(format!(
                    "two sources are named {:?}; the workspace file identifies sources by name, so rename one first \
                     (PATCH /api/v1/sources/{{id}} with {{\"name\": …}}; `sluice sources list` shows the ids)",
                    s.name
                ));
            }
        }
        let mut seen = HashSet::new();
        for d in &self.destinations {
            if !seen.insert(d.name.as_str()) {
                return Err(format!(
                    "two destinations are named {:?}; the workspace file identifies destinations by name, so rename one first \
                     (PATCH /api/v1/destinations/{{id}} with {{\"name\": …}}; `sluice destinations list` shows the ids)",
                    d.name
                ));
            }
        }
        let names = self.destination_names();
        let mut categories = Vec::with_capacity(self.categories.len());
        for c in &self.categories {
            let mut destinations = Vec::with_capacity(c.destinations.len());
            for id in &c.destinations {
                let name = names.get(id.as_str()).ok_or_else(|| {
                    format!(
                        "category {} is mapped to destination {id}, which the server did not list; \
                         the configuration changed while exporting, so export again",
                        c.id
                    )
                })?;
                destinations.push((*name).to_owned());
            }
            categories.push(CategorySpec {
                id: c.id.clone(),
                name: c.name.clone(),
                enabled: c.enabled,
                destinations,
            });
        }
        Ok(WorkspaceFile {
            workspace: Some(WorkspaceSettings {
                missing_consent_policy: Some(self.workspace.missing_consent_policy),
                multi_category_rule: Some(self.workspace.multi_category_rule),
                dedup_window_hours: Some(self.workspace.dedup_window_hours),
            }),
            sources: self
                .sources
                .iter()
                .map(|s| SourceSpec {
                    name: s.name.clone(),
                    enabled: s.enabled,
                    rate_limit_per_second: s.rate_limit_per_second,
                    missing_consent_policy: s.missing_consent_policy,
                })
                .collect(),
            destinations: self
                .destinations
                .iter()
                .map(|d| DestinationSpec {
                    name: d.name.clone(),
                    integration: d.integration.clone(),
                    kind: d.kind.clone(),
                    enabled: d.enabled,
                    enforce_consent: Some(d.enforce_consent),
                    settings: d.settings.clone(),
                })
                .collect(),
            consent_categories: categories,
        })
    }
}
