//! `/api/v1/retl/...`: reverse ETL connections, models, consent mappings, destination
//! mappings, syncs and runs (SPEC §10, §13).
//!
//! Members and owners manage connections, models and mappings and start syncs; only owners
//! change a model's consent mapping; viewers read. Every change is recorded in the audit trail
//! (`retl.connection.created`, `retl.model.updated`, `retl.consent_mapping.changed`,
//! `retl.mapping.created`, `retl.sync.started` …) with connection passwords redacted.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{double_option, ts};
use super::{ApiJson, Caller};
use crate::app::App;
use crate::error::ApiError;
use crate::retl::store::{
    Change, Counters, Mapping, MappingTarget, Model, NewModel, Operation, RecordError, Run,
    WarehouseConnection,
};
use crate::retl::warehouse::{self, Column, Kind, Target, WarehouseError};
use crate::retl::{RetlError, Trigger};
use crate::store::Role;

const MEMBER_RETL: &str = "Viewers cannot change reverse ETL connections, models or syncs";
const OWNER_CONSENT: &str = "Only owners can change consent categories and consent settings";

/// Who may call the reverse ETL routes (merged into `admin::ACCESS` lookups).
pub static ACCESS: &[(Method, &str, Role, &str)] = &[
    (Method::GET, "/api/v1/retl/connections", Role::Viewer, ""),
    (
        Method::POST,
        "/api/v1/retl/connections",
        Role::Member,
        MEMBER_RETL,
    ),
    (
        Method::GET,
        "/api/v1/retl/connections/{id}",
        Role::Viewer,
        "",
    ),
    (
        Method::PATCH,
        "/api/v1/retl/connections/{id}",
        Role::Member,
        MEMBER_RETL,
    ),
    (
        Method::DELETE,
        "/api/v1/retl/connections/{id}",
        Role::Member,
        MEMBER_RETL,
    ),
    (
        Method::POST,
        "/api/v1/retl/connections/{id}/test",
        Role::Member,
        MEMBER_RETL,
    ),
    (Method::GET, "/api/v1/retl/models", Role::Viewer, ""),
    (
        Method::POST,
        "/api/v1/retl/models",
        Role::Member,
        MEMBER_RETL,
    ),
    (Method::GET, "/api/v1/retl/models/{id}", Role::Viewer, ""),
    (
        Method::PATCH,
        "/api/v1/retl/models/{id}",
        Role::Member,
        MEMBER_RETL,
    ),
    (
        Method::DELETE,
        "/api/v1/retl/models/{id}",
        Role::Member,
        MEMBER_RETL,
    ),
    (
        Method::POST,
        "/api/v1/retl/models/{id}/preview",
        Role::Member,
        MEMBER_RETL,
    ),
    (
        Method::PUT,
        "/api/v1/retl/models/{id}/consent-mapping",
        Role::Owner,
        OWNER_CONSENT,
    ),
    (
        Method::GET,
        "/api/v1/retl/models/{id}/mappings",
        Role::Viewer,
        "",
    ),
    (
        Method::POST,
        "/api/v1/retl/models/{id}/mappings",
        Role::Member,
        MEMBER_RETL,
    ),
    (
        Method::DELETE,
        "/api/v1/retl/models/{id}/mappings/{mapping_id}",
        Role::Member,
        MEMBER_RETL,
    ),
    (
        Method::POST,
        "/api/v1/retl/models/{id}/sync",
        Role::Member,
        MEMBER_RETL,
    ),
    (
        Method::GET,
        "/api/v1/retl/models/{id}/runs",
        Role::Viewer,
        "",
    ),
    (Method::GET, "/api/v1/retl/runs/{id}", Role::Viewer, ""),
];

/// The reverse ETL routes, registered with their OpenAPI descriptions.
pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(list_connections, create_connection))
        .routes(routes!(get_connection, patch_connection, delete_connection))
        .routes(routes!(test_connection))
        .routes(routes!(list_models, create_model))
        .routes(routes!(get_model, patch_model, delete_model))
        .routes(routes!(preview))
        .routes(routes!(put_consent_mapping))
        .routes(routes!(list_mappings, create_mapping))
        .routes(routes!(delete_mapping))
        .routes(routes!(sync))
        .routes(routes!(list_runs))
        .routes(routes!(get_run))
}

impl From<RetlError> for ApiError {
    fn from(e: RetlError) -> Self {
        match e {
            RetlError::NotFound(m) => ApiError::not_found(m),
            RetlError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            RetlError::Invalid(m) => ApiError::bad_request("invalid", m),
            RetlError::Warehouse(e) => warehouse_error(e),
            RetlError::Unavailable(m) => ApiError::unavailable(m),
            RetlError::Storage(m) => {
                tracing::error!(error = %m, "Reverse ETL store failed.");
                ApiError::internal("the reverse ETL store failed; see the server log")
            }
        }
    }
}

/// Query problems are the caller's (400); a warehouse that cannot be reached or refuses the
/// connection is an upstream failure (502).
fn warehouse_error(e: WarehouseError) -> ApiError {
    let status = if e.is_query_error() {
        StatusCode::BAD_REQUEST
    } else if e.code == "timeout" {
        StatusCode::GATEWAY_TIMEOUT
    } else {
        StatusCode::BAD_GATEWAY
    };
    ApiError::new(status, e.code, e.message)
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid", message)
}

fn check_name(name: &str, what: &str) -> Result<(), ApiError> {
    let n = name.trim().chars().count();
    if n == 0 || n > 100 || name.chars().any(char::is_control) {
        return Err(invalid(format!(
            "a {what} name must be 1 to 100 characters without control characters"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Connections

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionView {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) kind: Kind,
    /// The connection URL with its password as `********`.
    pub(crate) url: String,
    pub(crate) statement_timeout_seconds: u32,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

impl From<&WarehouseConnection> for ConnectionView {
    fn from(c: &WarehouseConnection) -> Self {
        ConnectionView {
            id: c.id.clone(),
            name: c.name.clone(),
            kind: c.kind,
            url: warehouse::redact_url(&c.url),
            statement_timeout_seconds: c.statement_timeout_secs,
            created_at: ts(c.created_at),
            updated_at: ts(c.updated_at),
        }
    }
}

fn connection_audit(c: &WarehouseConnection) -> Value {
    json!(ConnectionView::from(c))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateConnection {
    name: String,
    kind: Kind,
    /// `postgres://user:password@host:5432/db`, `mysql://user:password@host:3306/db` or
    /// `sqlite:///path/to/file.db`.
    url: String,
    /// Longest a model query may run (default 300).
    statement_timeout_seconds: Option<u32>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchConnection {
    name: Option<String>,
    /// `********` in place of the password keeps the stored one.
    url: Option<String>,
    statement_timeout_seconds: Option<u32>,
}

/// What testing a connection found.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestView {
    pub(crate) ok: bool,
    /// When not ok: `unreachable`, `authentication_failed`, `database_not_found`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) code: Option<String>,
    pub(crate) message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) server_version: Option<String>,
    pub(crate) latency_ms: u64,
}

const DEFAULT_TIMEOUT_SECS: u32 = 300;

fn check_timeout(secs: u32) -> Result<u32, ApiError> {
    if (1..=86_400).contains(&secs) {
        Ok(secs)
    } else {
        Err(invalid(
            "statementTimeoutSeconds must be between 1 and 86400",
        ))
    }
}

fn target(app: &App, c: &WarehouseConnection) -> Result<Target, WarehouseError> {
    Target::of(
        c.kind,
        &c.url,
        std::time::Duration::from_secs(u64::from(c.statement_timeout_secs)),
        &app.sqlite_roots(),
    )
}

/// A URL the connection may use: right for its kind, and for SQLite a file Sluice may read.
fn check_url(app: &App, kind: Kind, url: &str) -> Result<(), ApiError> {
    warehouse::validate_url(kind, url).map_err(invalid)?;
    if kind == Kind::Sqlite {
        app.sqlite_roots()
            .check(url)
            .map_err(|e| ApiError::bad_request(e.code, e.message))?;
    }
    Ok(())
}

/// All warehouse connections (passwords redacted).
#[utoipa::path(get, path = "/api/v1/retl/connections", tag = "retl", responses((status = 200, body = Vec<ConnectionView>)))]
pub async fn list_connections(
    State(app): State<Arc<App>>,
) -> Result<Json<Vec<ConnectionView>>, ApiError> {
    Ok(Json(
        app.retl
            .store
            .connections()
            .await?
            .iter()
            .map(ConnectionView::from)
            .collect(),
    ))
}

/// One warehouse connection (password redacted).
#[utoipa::path(get, path = "/api/v1/retl/connections/{id}", tag = "retl", params(("id" = String, Path, description = "Connection id")),
    responses((status = 200, body = ConnectionView), (status = 404, body = super::ErrorBody)))]
pub async fn get_connection(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<ConnectionView>, ApiError> {
    Ok(Json((&app.retl.store.connection(&id).await?).into()))
}

/// Create a warehouse connection (test it with `POST …/test`).
#[utoipa::path(post, path = "/api/v1/retl/connections", tag = "retl", request_body = CreateConnection,
    responses((status = 201, body = ConnectionView), (status = 400, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn create_connection(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateConnection>,
) -> Result<(StatusCode, Json<ConnectionView>), ApiError> {
    check_name(&body.name, "connection")?;
    check_url(&app, body.kind, &body.url)?;
    let timeout = check_timeout(
        body.statement_timeout_seconds
            .unwrap_or(DEFAULT_TIMEOUT_SECS),
    )?;
    let connection = app
        .retl
        .store
        .create_connection(body.name.trim().to_owned(), body.kind, body.url, timeout)
        .await?;
    app.store
        .record_audit(
            &caller.actor(),
            "retl.connection.created",
            "retl_connection",
            &connection.id,
            connection_audit(&connection),
        )
        .await?;
    Ok((StatusCode::CREATED, Json((&connection).into())))
}

/// Rename a connection, change its URL or timeout.
#[utoipa::path(patch, path = "/api/v1/retl/connections/{id}", tag = "retl", params(("id" = String, Path, description = "Connection id")), request_body = PatchConnection,
    responses((status = 200, body = ConnectionView), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn patch_connection(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PatchConnection>,
) -> Result<Json<ConnectionView>, ApiError> {
    let current = app.retl.store.connection(&id).await?;
    if let Some(name) = &body.name {
        check_name(name, "connection")?;
    }
    let url = match body.url {
        Some(url) => {
            let url = warehouse::unredact_url(&url, &current.url);
            check_url(&app, current.kind, &url)?;
            Some(url)
        }
        None => None,
    };
    let timeout = body
        .statement_timeout_seconds
        .map(check_timeout)
        .transpose()?;
    let (before, after) = app
        .retl
        .store
        .update_connection(&id, body.name.map(|n| n.trim().to_owned()), url, timeout)
        .await?;
    app.store
        .record_audit(
            &caller.actor(),
            "retl.connection.updated",
            "retl_connection",
            &id,
            json!({"before": connection_audit(&before), "after": connection_audit(&after)}),
        )
        .await?;
    Ok(Json((&after).into()))
}

/// Delete a connection no model uses.
#[utoipa::path(delete, path = "/api/v1/retl/connections/{id}", tag = "retl", params(("id" = String, Path, description = "Connection id")),
    responses((status = 204), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn delete_connection(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let connection = app.retl.store.delete_connection(&id).await?;
    app.store
        .record_audit(
            &caller.actor(),
            "retl.connection.deleted",
            "retl_connection",
            &id,
            connection_audit(&connection),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Connect and run a read-only query: `ok`, or what is wrong (host, credentials, database).
#[utoipa::path(post, path = "/api/v1/retl/connections/{id}/test", tag = "retl", params(("id" = String, Path, description = "Connection id")),
    responses((status = 200, body = TestView), (status = 404, body = super::ErrorBody)))]
pub async fn test_connection(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<TestView>, ApiError> {
    let connection = app.retl.store.connection(&id).await?;
    let start = std::time::Instant::now();
    let tested = match target(&app, &connection) {
        Ok(target) => warehouse::test(&target).await,
        Err(e) => Err(e),
    };
    Ok(Json(match tested {
        Ok(tested) => TestView {
            ok: true,
            code: None,
            message: format!("connected to {}", first_line(&tested.server_version)),
            server_version: Some(tested.server_version),
            latency_ms: tested.latency.as_millis() as u64,
        },
        Err(e) => TestView {
            ok: false,
            code: Some(e.code.to_owned()),
            message: e.message,
            server_version: None,
            latency_ms: start.elapsed().as_millis() as u64,
        },
    }))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

// ---------------------------------------------------------------------------------------------
// Models

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Schedule {
    /// Start a sync this many seconds after the previous one started.
    pub(crate) every_seconds: u32,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelView {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) connection_id: String,
    pub(crate) query: String,
    pub(crate) unique_id_column: String,
    /// The column events take their `userId` from (the unique id column when null).
    pub(crate) user_id_column: Option<String>,
    /// The query's columns, as the warehouse described them.
    pub(crate) columns: Vec<Column>,
    /// `null`: manual syncs only.
    pub(crate) schedule: Option<Schedule>,
    /// At most this many records queued per sync; consent-filtered records do not count.
    pub(crate) row_limit: Option<u64>,
    pub(crate) consent_mapping: ConsentMapping,
    pub(crate) mappings: Vec<MappingView>,
    /// The run in progress, if any.
    pub(crate) running_run_id: Option<String>,
    pub(crate) last_run: Option<RunView>,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConsentMapping {
    /// Column → consent category id. Empty: consent is not enforced for this model.
    pub(crate) columns: BTreeMap<String, String>,
}

fn model_audit(m: &Model) -> Value {
    json!({
        "id": m.id, "name": m.name, "connectionId": m.connection_id, "query": m.query,
        "uniqueIdColumn": m.unique_id_column, "userIdColumn": m.user_id_column,
        "schedule": m.every_seconds.map(|s| json!({"everySeconds": s})), "rowLimit": m.row_limit,
    })
}

async fn model_view(app: &App, model: Model) -> Result<ModelView, ApiError> {
    let mappings = app.retl.store.mappings(&model.id).await?;
    let last_run = app
        .retl
        .store
        .runs(&model.id, 1)
        .await?
        .into_iter()
        .next()
        .map(RunView::from);
    Ok(ModelView {
        running_run_id: app.retl.running_run(&model.id).filter(|r| !r.is_empty()),
        id: model.id,
        name: model.name,
        connection_id: model.connection_id,
        query: model.query,
        unique_id_column: model.unique_id_column,
        user_id_column: model.user_id_column,
        columns: model.columns,
        schedule: model
            .every_seconds
            .map(|every_seconds| Schedule { every_seconds }),
        row_limit: model.row_limit,
        consent_mapping: ConsentMapping {
            columns: model.consent,
        },
        mappings: mappings.into_iter().map(MappingView::from).collect(),
        last_run,
        created_at: ts(model.created_at),
        updated_at: ts(model.updated_at),
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateModel {
    name: String,
    connection_id: String,
    /// One SELECT (or WITH … SELECT) statement.
    query: String,
    /// A column with a unique, non-NULL value per row.
    unique_id_column: String,
    /// The column events take their `userId` from; default the unique id column.
    user_id_column: Option<String>,
    schedule: Option<Schedule>,
    row_limit: Option<u64>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchModel {
    name: Option<String>,
    query: Option<String>,
    unique_id_column: Option<String>,
    /// `null` goes back to the unique id column.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    user_id_column: Option<Option<String>>,
    /// `null` removes the schedule.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Schedule>)]
    schedule: Option<Option<Schedule>>,
    /// `null` removes the limit.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    row_limit: Option<Option<u64>>,
}

fn check_schedule(schedule: Option<&Schedule>) -> Result<Option<u32>, ApiError> {
    match schedule {
        None => Ok(None),
        Some(s) if (1..=30 * 86_400).contains(&s.every_seconds) => Ok(Some(s.every_seconds)),
        Some(_) => Err(invalid(
            "schedule.everySeconds must be between 1 and 2592000 (30 days)",
        )),
    }
}

fn check_row_limit(limit: Option<u64>) -> Result<Option<u64>, ApiError> {
    match limit {
        Some(0) => Err(invalid(
            "rowLimit must be at least 1 (leave it out for no limit)",
        )),
        other => Ok(other),
    }
}

fn check_column(columns: &[Column], name: &str, field: &str) -> Result<(), ApiError> {
    if columns.iter().any(|c| c.name == name) {
        return Ok(());
    }
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    Err(ApiError::bad_request(
        "unknown_column",
        format!(
            "{field}: the query returns no column {name:?}; it returns {}",
            names.join(", ")
        ),
    ))
}

/// Ask the warehouse for the query's columns and check the id columns against them.
async fn describe(
    app: &App,
    connection: &WarehouseConnection,
    query: &str,
    unique_id_column: &str,
    user_id_column: Option<&str>,
) -> Result<Vec<Column>, ApiError> {
    if query.trim().is_empty() {
        return Err(invalid("query must not be empty"));
    }
    warehouse::guard::check(query, connection.kind)
        .map_err(|m| ApiError::bad_request("invalid_query", m))?;
    let columns = warehouse::describe(&target(app, connection).map_err(warehouse_error)?, query)
        .await
        .map_err(warehouse_error)?;
    check_column(&columns, unique_id_column, "uniqueIdColumn")?;
    if let Some(user) = user_id_column {
        check_column(&columns, user, "userIdColumn")?;
    }
    Ok(columns)
}

/// All models with their mappings and last run.
#[utoipa::path(get, path = "/api/v1/retl/models", tag = "retl", responses((status = 200, body = Vec<ModelView>)))]
pub async fn list_models(State(app): State<Arc<App>>) -> Result<Json<Vec<ModelView>>, ApiError> {
    let mut out = Vec::new();
    for model in app.retl.store.models().await? {
        out.push(model_view(&app, model).await?);
    }
    Ok(Json(out))
}

/// One model with its consent mapping, mappings and last run.
#[utoipa::path(get, path = "/api/v1/retl/models/{id}", tag = "retl", params(("id" = String, Path, description = "Model id")),
    responses((status = 200, body = ModelView), (status = 404, body = super::ErrorBody)))]
pub async fn get_model(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<ModelView>, ApiError> {
    let model = app.retl.store.model(&id).await?;
    Ok(Json(model_view(&app, model).await?))
}

/// Create a model. The warehouse describes the query; the unique id column must be in it.
#[utoipa::path(post, path = "/api/v1/retl/models", tag = "retl", request_body = CreateModel,
    responses((status = 201, body = ModelView), (status = 400, body = super::ErrorBody), (status = 409, body = super::ErrorBody), (status = 502, body = super::ErrorBody)))]
pub async fn create_model(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateModel>,
) -> Result<(StatusCode, Json<ModelView>), ApiError> {
    check_name(&body.name, "model")?;
    let every_seconds = check_schedule(body.schedule.as_ref())?;
    let row_limit = check_row_limit(body.row_limit)?;
    let connection = app
        .retl
        .store
        .connection(&body.connection_id)
        .await
        .map_err(|e| match e {
            RetlError::NotFound(m) => invalid(format!("connectionId: {m}")),
            other => other.into(),
        })?;
    let columns = describe(
        &app,
        &connection,
        &body.query,
        &body.unique_id_column,
        body.user_id_column.as_deref(),
    )
    .await?;
    let model = app
        .retl
        .store
        .create_model(NewModel {
            name: body.name.trim().to_owned(),
            connection_id: connection.id,
            query: body.query,
            unique_id_column: body.unique_id_column,
            user_id_column: body.user_id_column,
            columns,
            every_seconds,
            row_limit,
        })
        .await?;
    app.store
        .record_audit(
            &caller.actor(),
            "retl.model.created",
            "retl_model",
            &model.id,
            model_audit(&model),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(model_view(&app, model).await?)))
}

/// Change a model. A new query or id column is checked against the warehouse again; the
/// checkpoint is kept, so the next sync sends what differs.
#[utoipa::path(patch, path = "/api/v1/retl/models/{id}", tag = "retl", params(("id" = String, Path, description = "Model id")), request_body = PatchModel,
    responses((status = 200, body = ModelView), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody), (status = 502, body = super::ErrorBody)))]
pub async fn patch_model(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PatchModel>,
) -> Result<Json<ModelView>, ApiError> {
    let mut model = app.retl.store.model(&id).await?;
    if let Some(name) = body.name {
        check_name(&name, "model")?;
        model.name = name.trim().to_owned();
    }
    if let Some(schedule) = body.schedule {
        model.every_seconds = check_schedule(schedule.as_ref())?;
    }
    if let Some(limit) = body.row_limit {
        model.row_limit = check_row_limit(limit)?;
    }
    let reshape =
        body.query.is_some() || body.unique_id_column.is_some() || body.user_id_column.is_some();
    if let Some(query) = body.query {
        model.query = query;
    }
    if let Some(column) = body.unique_id_column {
        model.unique_id_column = column;
    }
    if let Some(column) = body.user_id_column {
        model.user_id_column = column;
    }
    if reshape {
        let connection = app.retl.store.connection(&model.connection_id).await?;
        model.columns = describe(
            &app,
            &connection,
            &model.query,
            &model.unique_id_column,
            model.user_id_column.as_deref(),
        )
        .await?;
    }
    let (before, after) = app.retl.store.update_model(model).await?;
    app.store
        .record_audit(
            &caller.actor(),
            "retl.model.updated",
            "retl_model",
            &id,
            json!({"before": model_audit(&before), "after": model_audit(&after)}),
        )
        .await?;
    Ok(Json(model_view(&app, after).await?))
}

/// Delete a model with its mappings, checkpoint and run history.
#[utoipa::path(delete, path = "/api/v1/retl/models/{id}", tag = "retl", params(("id" = String, Path, description = "Model id")),
    responses((status = 204), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn delete_model(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if let Some(run) = app.retl.running_run(&id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("model {id} is syncing (run {run}); delete it once the run has finished"),
        ));
    }
    let model = app.retl.store.delete_model(&id).await?;
    app.store
        .record_audit(
            &caller.actor(),
            "retl.model.deleted",
            "retl_model",
            &id,
            model_audit(&model),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviewView {
    pub(crate) columns: Vec<Column>,
    /// Up to 10 rows, each an array of values in column order.
    #[schema(value_type = Vec<Vec<Object>>)]
    pub(crate) rows: Vec<Vec<Value>>,
}

/// Run the model's query (read-only) and return its columns and first 10 rows.
#[utoipa::path(post, path = "/api/v1/retl/models/{id}/preview", tag = "retl", params(("id" = String, Path, description = "Model id")),
    responses((status = 200, body = PreviewView), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody), (status = 502, body = super::ErrorBody)))]
pub async fn preview(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<PreviewView>, ApiError> {
    let model = app.retl.store.model(&id).await?;
    let connection = app.retl.store.connection(&model.connection_id).await?;
    let target = target(&app, &connection).map_err(warehouse_error)?;
    let (columns, rows) = warehouse::preview(&target, &model.query, 10)
        .await
        .map_err(warehouse_error)?;
    Ok(Json(PreviewView { columns, rows }))
}

/// Set the model's consent mapping (owners): which column holds each category's consent.
/// An empty map turns enforcement off for the model.
#[utoipa::path(put, path = "/api/v1/retl/models/{id}/consent-mapping", tag = "retl", params(("id" = String, Path, description = "Model id")), request_body = ConsentMapping,
    responses((status = 200, body = ModelView), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn put_consent_mapping(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ConsentMapping>,
) -> Result<Json<ModelView>, ApiError> {
    let model = app.retl.store.model(&id).await?;
    let snapshot = app.snapshot();
    let mut by_category: BTreeMap<&str, &str> = BTreeMap::new();
    for (column, category) in &body.columns {
        check_column(&model.columns, column, "columns")?;
        if !snapshot.categories.iter().any(|c| &c.id == category) {
            let known: Vec<&str> = snapshot.categories.iter().map(|c| c.id.as_str()).collect();
            return Err(ApiError::bad_request(
                "unknown_category",
                format!(
                    "there is no consent category {category:?} (category ids are case-sensitive); the workspace has {}",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
        if let Some(other) = by_category.insert(category, column) {
            return Err(invalid(format!(
                "category {category:?} is mapped to both {other:?} and {column:?}; map each category to one column"
            )));
        }
    }
    let (before, after) = app
        .retl
        .store
        .set_consent_mapping(&id, body.columns)
        .await?;
    app.store
        .record_audit(
            &caller.actor(),
            "retl.consent_mapping.changed",
            "retl_model",
            &id,
            json!({"before": {"columns": before.consent}, "after": {"columns": after.consent}}),
        )
        .await?;
    Ok(Json(model_view(&app, after).await?))
}

// ---------------------------------------------------------------------------------------------
// Mappings

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MappingView {
    pub(crate) id: String,
    pub(crate) model_id: String,
    /// The destination records go to directly (consent decided by reverse ETL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) destination_id: Option<String>,
    /// Records go into the event pipeline as events of `sourceId`.
    pub(crate) connections: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) source_id: Option<String>,
    pub(crate) operation: Operation,
    pub(crate) event: Option<String>,
    pub(crate) on: Vec<Change>,
    pub(crate) created_at: String,
}

impl From<Mapping> for MappingView {
    fn from(m: Mapping) -> Self {
        let on = m.on();
        let (destination_id, source_id) = match m.target {
            MappingTarget::Destination(d) => (Some(d), None),
            MappingTarget::Connections(s) => (None, Some(s)),
        };
        MappingView {
            id: m.id,
            model_id: m.model_id,
            connections: source_id.is_some(),
            destination_id,
            source_id,
            operation: m.operation,
            event: m.event,
            on,
            created_at: ts(m.created_at),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateMapping {
    /// Send records straight to this destination …
    destination_id: Option<String>,
    /// … or, with `true`, into the event pipeline as events of `sourceId`.
    #[serde(default)]
    connections: bool,
    /// Default: the first source.
    source_id: Option<String>,
    operation: Operation,
    /// The event name, for `track`.
    event: Option<String>,
    /// Which changes to send; default `["added", "updated"]`.
    on: Option<Vec<Change>>,
}

/// A model's mappings.
#[utoipa::path(get, path = "/api/v1/retl/models/{id}/mappings", tag = "retl", params(("id" = String, Path, description = "Model id")),
    responses((status = 200, body = Vec<MappingView>), (status = 404, body = super::ErrorBody)))]
pub async fn list_mappings(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Vec<MappingView>>, ApiError> {
    Ok(Json(
        app.retl
            .store
            .mappings(&id)
            .await?
            .into_iter()
            .map(MappingView::from)
            .collect(),
    ))
}

/// Send the model's records to a destination, or into the event pipeline (`connections`).
#[utoipa::path(post, path = "/api/v1/retl/models/{id}/mappings", tag = "retl", params(("id" = String, Path, description = "Model id")), request_body = CreateMapping,
    responses((status = 201, body = MappingView), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn create_mapping(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateMapping>,
) -> Result<(StatusCode, Json<MappingView>), ApiError> {
    let model = app.retl.store.model(&id).await?;
    let snapshot = app.snapshot();
    let target = match (body.destination_id, body.connections) {
        (Some(dest), false) => {
            if body.source_id.is_some() {
                return Err(invalid(
                    "sourceId goes with connections: true, not with destinationId",
                ));
            }
            snapshot.destination_by_id(&dest).ok_or_else(|| {
                invalid(format!("destinationId: there is no destination {dest}; GET /api/v1/destinations lists them"))
            })?;
            MappingTarget::Destination(dest)
        }
        (None, true) => {
            let source = match body.source_id {
                Some(source) => {
                    snapshot.source_by_id(&source).ok_or_else(|| {
                        invalid(format!(
                            "sourceId: there is no source {source}; GET /api/v1/sources lists them"
                        ))
                    })?;
                    source
                }
                None => app
                    .store
                    .sources()
                    .await?
                    .into_iter()
                    .next()
                    .map(|s| s.id)
                    .ok_or_else(|| {
                        invalid("there is no source to send events as; create one or give sourceId")
                    })?,
            };
            MappingTarget::Connections(source)
        }
        (Some(_), true) => {
            return Err(invalid(
                "give either destinationId or connections: true, not both",
            ));
        }
        (None, false) => {
            return Err(invalid(
                "give destinationId (send to a destination) or connections: true (send into the event pipeline)",
            ));
        }
    };
    let event = match (body.operation, body.event) {
        (Operation::Track, Some(e)) if !e.trim().is_empty() && e.chars().count() <= 200 => Some(e),
        (Operation::Track, _) => {
            return Err(invalid(
                "a track mapping needs an event name of 1 to 200 characters in `event`",
            ));
        }
        (Operation::Identify, Some(_)) => {
            return Err(invalid(
                "`event` is for track mappings; identify events have no name",
            ));
        }
        (Operation::Identify, None) => None,
    };
    let on = body
        .on
        .unwrap_or_else(|| vec![Change::Added, Change::Updated]);
    if on.is_empty() {
        return Err(invalid("on needs at least one of added, updated, deleted"));
    }
    let mapping = app
        .retl
        .store
        .create_mapping(Mapping {
            id: String::new(),
            model_id: model.id.clone(),
            target,
            operation: body.operation,
            event,
            on_added: on.contains(&Change::Added),
            on_updated: on.contains(&Change::Updated),
            on_deleted: on.contains(&Change::Deleted),
            created_at: 0,
        })
        .await?;
    app.store
        .record_audit(
            &caller.actor(),
            "retl.mapping.created",
            "retl_mapping",
            &mapping.id,
            mapping.audit_json(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(mapping.into())))
}

/// Remove a mapping.
#[utoipa::path(delete, path = "/api/v1/retl/models/{id}/mappings/{mapping_id}", tag = "retl",
    params(("id" = String, Path, description = "Model id"), ("mapping_id" = String, Path, description = "Mapping id")),
    responses((status = 204), (status = 404, body = super::ErrorBody)))]
pub async fn delete_mapping(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((id, mapping_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let mapping = app.retl.store.delete_mapping(&id, &mapping_id).await?;
    app.store
        .record_audit(
            &caller.actor(),
            "retl.mapping.deleted",
            "retl_mapping",
            &mapping_id,
            mapping.audit_json(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Syncs and runs

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncStarted {
    pub(crate) run_id: String,
    pub(crate) status: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    pub(crate) id: String,
    pub(crate) model_id: String,
    /// `manual`, `schedule` or `resume`.
    pub(crate) trigger: String,
    pub(crate) started_by: Option<String>,
    /// `running`, `succeeded`, `partial` (some rows failed), `failed` or `interrupted`.
    pub(crate) status: String,
    /// `extracting`, `deleting` or `done`.
    pub(crate) phase: String,
    pub(crate) started_at: String,
    pub(crate) finished_at: Option<String>,
    #[serde(flatten)]
    pub(crate) counters: Counters,
    /// A sample of the rows that failed (the `failed` counter counts them all).
    pub(crate) errors: Vec<RecordError>,
    pub(crate) warnings: Vec<String>,
    /// Why the run failed or stopped.
    pub(crate) error: Option<String>,
    /// The interrupted or failed run this one picked up after.
    pub(crate) resumed_from: Option<String>,
}

impl From<Run> for RunView {
    fn from(r: Run) -> Self {
        RunView {
            id: r.id,
            model_id: r.model_id,
            trigger: r.trigger,
            started_by: r.started_by,
            status: r.status,
            phase: r.phase,
            started_at: ts(r.started_at),
            finished_at: r.finished_at.map(ts),
            counters: r.counters,
            errors: r.errors,
            warnings: r.warnings,
            error: r.error,
            resumed_from: r.resumed_from,
        }
    }
}

/// Start a sync now; follow it with `GET /api/v1/retl/runs/{runId}`. 409 while one runs.
#[utoipa::path(post, path = "/api/v1/retl/models/{id}/sync", tag = "retl", params(("id" = String, Path, description = "Model id")),
    responses((status = 202, body = SyncStarted), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn sync(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<SyncStarted>), ApiError> {
    let actor = caller.actor();
    let run = app
        .retl
        .start_sync(&app, &id, Trigger::Manual, Some(&actor))
        .await?;
    app.store
        .record_audit(
            &actor,
            "retl.sync.started",
            "retl_model",
            &id,
            json!({"runId": run.id}),
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(SyncStarted {
            run_id: run.id,
            status: run.status,
        }),
    ))
}

/// A model's runs, newest first (the last 50).
#[utoipa::path(get, path = "/api/v1/retl/models/{id}/runs", tag = "retl", params(("id" = String, Path, description = "Model id")),
    responses((status = 200, body = Vec<RunView>), (status = 404, body = super::ErrorBody)))]
pub async fn list_runs(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Vec<RunView>>, ApiError> {
    Ok(Json(
        app.retl
            .store
            .runs(&id, 50)
            .await?
            .into_iter()
            .map(RunView::from)
            .collect(),
    ))
}

/// One run, with its counters while it runs.
#[utoipa::path(get, path = "/api/v1/retl/runs/{id}", tag = "retl", params(("id" = String, Path, description = "Run id")),
    responses((status = 200, body = RunView), (status = 404, body = super::ErrorBody)))]
pub async fn get_run(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    Ok(Json(app.retl.store.run(&id).await?.into()))
}
