//! Carrying out regulations (SPEC §7): suppression at the API, deletion from profiles, the
//! consent ledger (a tombstone stays), the event backlog and dead letters, and from
//! destinations whose type supports deletion.
//!
//! A regulation is recorded `INITIALIZED` by the admin API and processed in the background:
//! `RUNNING`, then `FINISHED`, `PARTIAL_SUCCESS` (internal deletion done, a destination failed)
//! or `FAILED`.
//!
//! Order matters for deletion: suppress first (nothing new arrives), blank the log backlog,
//! wait until the profile consumer has passed the head (so it cannot re-create what it had
//! already read), then delete the profile and ledger.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::app::App;
use crate::destinations;
use crate::log::Consumer;
use crate::store::{Regulation, RegulationType};

/// Process a regulation to its final status.
pub async fn process(app: Arc<App>, regulation: Regulation) {
    let id = regulation.id.clone();
    if let Err(error) = app
        .store
        .set_regulation_status(&id, "RUNNING", json!({}))
        .await
    {
        tracing::error!(%error, regulation = %id, "Cannot mark the regulation running.");
    }
    let (status, details) = match run(&app, &regulation).await {
        Ok(done) => done,
        Err(error) => {
            tracing::error!(%error, regulation = %id, "Regulation failed.");
            ("FAILED", json!({"error": error}))
        }
    };
    if let Err(error) = app.store.set_regulation_status(&id, status, details).await {
        tracing::error!(%error, regulation = %id, "Cannot record the regulation's result.");
    }
    tracing::info!(regulation = %id, status, kind = regulation.regulation_type.as_str(), "Regulation processed.");
}

async fn run(app: &Arc<App>, regulation: &Regulation) -> Result<(&'static str, Value), String> {
    let kind = regulation.regulation_type;
    let users = regulation.subject_ids.clone();
    let mut details = serde_json::Map::new();

    if kind == RegulationType::Unsuppress {
        let lifted = app
            .store
            .unsuppress(users)
            .await
            .map_err(|e| e.to_string())?;
        reload(app).await?;
        details.insert("unsuppressed".into(), json!(lifted));
        return Ok(("FINISHED", Value::Object(details)));
    }

    // Every id linked to the users, for suppression and deletion alike.
    let mut pairs: Vec<(String, String)> = Vec::new();
    for user in &users {
        let (_, anons) = app
            .profiles
            .linked_ids(vec![user.clone()])
            .await
            .map_err(|e| e.to_string())?;
        pairs.extend(anons.into_iter().map(|a| (a, user.clone())));
    }
    let (all_users, all_anons) = app
        .profiles
        .linked_ids(users.clone())
        .await
        .map_err(|e| e.to_string())?;

    if kind.suppresses() {
        app.store
            .suppress(&regulation.id, users.clone(), pairs.clone())
            .await
            .map_err(|e| e.to_string())?;
        reload(app).await?;
        details.insert("suppressedUserIds".into(), json!(users.len()));
        details.insert("suppressedAnonymousIds".into(), json!(pairs.len()));
    }

    let mut status = "FINISHED";
    if kind.deletes_internally() {
        let removed = app
            .log
            .delete_people(all_users.clone(), all_anons.clone())
            .await
            .map_err(|e| e.to_string())?;
        details.insert("eventsDeleted".into(), json!(removed.events));
        details.insert("deadLettersDeleted".into(), json!(removed.dead_letters));
        wait_for_profile_consumer(app).await;
        let deleted = app
            .profiles
            .delete_people(
                users.clone(),
                regulation.id.clone(),
                regulation.created_by.clone(),
            )
            .await
            .map_err(|e| e.to_string())?;
        details.insert("profilesDeleted".into(), json!(deleted.profiles));
        details.insert("ledgerEntriesDeleted".into(), json!(deleted.ledger_entries));
    }

    if kind.deletes_from_destinations() {
        let snapshot = app.snapshot();
        let mut results = Vec::new();
        let mut failed = 0;
        for dest in &snapshot.destinations {
            let Some(kind) = destinations::find(&dest.kind) else {
                continue;
            };
            let outcome = match kind.build(&dest.settings, &app.build_ctx) {
                Ok(instance) => instance.delete_people(&all_users, &all_anons).await,
                Err(error) => Err(destinations::DeletionError::Failed(error)),
            };
            let result = match outcome {
                Ok(removed) => {
                    json!({"destinationId": dest.id, "status": "FINISHED", "removed": removed})
                }
                Err(destinations::DeletionError::NotSupported) => {
                    json!({"destinationId": dest.id, "status": "NOT_SUPPORTED"})
                }
                Err(destinations::DeletionError::Failed(error)) => {
                    failed += 1;
                    json!({"destinationId": dest.id, "status": "FAILED", "error": error})
                }
            };
            results.push(result);
        }
        details.insert("destinations".into(), Value::Array(results));
        if failed > 0 {
            status = "PARTIAL_SUCCESS";
        }
    }
    Ok((status, Value::Object(details)))
}

async fn reload(app: &Arc<App>) -> Result<(), String> {
    let _change = app.change_config().await;
    app.reload().await.map_err(|e| e.to_string())
}

/// Wait (up to 30 s) until the profile consumer has processed everything committed so far.
async fn wait_for_profile_consumer(app: &Arc<App>) {
    let head = *app.log.committed().borrow();
    let started = Instant::now();
    let consumer: Consumer = crate::profiles::consumer::CONSUMER;
    while started.elapsed() < Duration::from_secs(30) {
        match app.log.cursor(&consumer).await {
            Ok(cursor) if cursor >= head => return,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    tracing::warn!(
        "The profile consumer did not catch up within 30 s; deleting the profile anyway."
    );
}
