//! `/api/v1/consent/categories`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::extract::ts;
use super::{ApiJson, Caller};
use crate::app::App;
use crate::error::ApiError;
use crate::store::{Category, CategoryPatch, NewCategory};

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CategoryView {
    id: String,
    name: String,
    enabled: bool,
    destinations: Vec<String>,
    created_at: String,
}

impl From<Category> for CategoryView {
    fn from(c: Category) -> Self {
        CategoryView {
            id: c.id,
            name: c.name,
            enabled: c.enabled,
            destinations: c.destinations,
            created_at: ts(c.created_at),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateCategory {
    id: String,
    name: String,
    #[serde(default)]
    destinations: Vec<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchCategory {
    id: Option<String>,
    name: Option<String>,
    destinations: Option<Vec<String>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Disable {
    confirm_name: Option<String>,
}

/// All consent categories with their mapped destinations.
#[utoipa::path(get, path = "/api/v1/consent/categories", tag = "consent", responses((status = 200, body = Vec<CategoryView>)))]
pub async fn list(State(app): State<Arc<App>>) -> Result<Json<Vec<CategoryView>>, ApiError> {
    Ok(Json(
        app.store
            .categories()
            .await?
            .into_iter()
            .map(CategoryView::from)
            .collect(),
    ))
}

/// One consent category.
#[utoipa::path(get, path = "/api/v1/consent/categories/{id}", tag = "consent", params(("id" = String, Path, description = "Category id")),
    responses((status = 200, body = CategoryView), (status = 404, body = super::ErrorBody)))]
pub async fn get(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<CategoryView>, ApiError> {
    Ok(Json(app.store.category(&id).await?.into()))
}

/// Create a category and map destinations to it (owners).
#[utoipa::path(post, path = "/api/v1/consent/categories", tag = "consent", request_body = CreateCategory,
    responses((status = 201, body = CategoryView), (status = 400, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateCategory>,
) -> Result<(StatusCode, Json<CategoryView>), ApiError> {
    let _change = app.change_config().await;
    let created = app
        .store
        .create_category(
            NewCategory {
                id: body.id,
                name: body.name,
                destinations: body.destinations,
            },
            &caller.actor(),
        )
        .await?;
    app.reload().await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// Change a category's id, name or mapped destinations (owners).
#[utoipa::path(patch, path = "/api/v1/consent/categories/{id}", tag = "consent", params(("id" = String, Path, description = "Category id (the key in categoryPreferences)")), request_body = PatchCategory,
    responses((status = 200, body = CategoryView), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn patch(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PatchCategory>,
) -> Result<Json<CategoryView>, ApiError> {
    let _change = app.change_config().await;
    let (_, after) = app
        .store
        .update_category(
            &id,
            CategoryPatch {
                id: body.id,
                name: body.name,
                destinations: body.destinations,
            },
            &caller.actor(),
        )
        .await?;
    app.reload().await?;
    Ok(Json(after.into()))
}

/// Stop enforcing a category; `confirmName` must equal its name (owners).
#[utoipa::path(post, path = "/api/v1/consent/categories/{id}/disable", tag = "consent", params(("id" = String, Path, description = "Category id (the key in categoryPreferences)")), request_body = Disable,
    responses((status = 200, body = CategoryView), (status = 400, body = super::ErrorBody)))]
pub async fn disable(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Disable>,
) -> Result<Json<CategoryView>, ApiError> {
    let _change = app.change_config().await;
    let (_, after) = app
        .store
        .set_category_enabled(&id, false, body.confirm_name, &caller.actor())
        .await?;
    app.reload().await?;
    Ok(Json(after.into()))
}

/// Enforce a category again (owners).
#[utoipa::path(post, path = "/api/v1/consent/categories/{id}/enable", tag = "consent", params(("id" = String, Path, description = "Category id (the key in categoryPreferences)")),
    responses((status = 200, body = CategoryView), (status = 404, body = super::ErrorBody)))]
pub async fn enable(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CategoryView>, ApiError> {
    let _change = app.change_config().await;
    let (_, after) = app
        .store
        .set_category_enabled(&id, true, None, &caller.actor())
        .await?;
    app.reload().await?;
    Ok(Json(after.into()))
}

/// Delete a category and its mappings (owners).
#[utoipa::path(delete, path = "/api/v1/consent/categories/{id}", tag = "consent", params(("id" = String, Path, description = "Category id (the key in categoryPreferences)")),
    responses((status = 204), (status = 404, body = super::ErrorBody)))]
pub async fn delete(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let _change = app.change_config().await;
    app.store.delete_category(&id, &caller.actor()).await?;
    app.reload().await?;
    Ok(StatusCode::NO_CONTENT)
}
