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

#[derive(Serialize)]
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateCategory {
    id: String,
    name: String,
    #[serde(default)]
    destinations: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchCategory {
    id: Option<String>,
    name: Option<String>,
    destinations: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Disable {
    confirm_name: Option<String>,
}

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

pub async fn get(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<CategoryView>, ApiError> {
    Ok(Json(app.store.category(&id).await?.into()))
}

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
