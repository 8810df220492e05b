//! `/api/v1/users`, their tokens, and `/api/v1/me`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::extract::ts;
use super::{ApiJson, Caller};
use crate::app::App;
use crate::error::ApiError;
use crate::store::{NewUser, Role, Token, User, UserPatch};

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub(crate) id: String,
    pub(crate) email: String,
    pub(crate) name: String,
    pub(crate) role: Role,
    pub(crate) has_password: bool,
    pub(crate) created_at: String,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            id: u.id,
            email: u.email,
            name: u.name,
            role: u.role,
            has_password: u.has_password,
            created_at: ts(u.created_at),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) prefix: String,
    pub(crate) created_at: String,
    pub(crate) last_used_at: Option<String>,
    pub(crate) revoked_at: Option<String>,
    /// Only in the answer to creation; never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) token: Option<String>,
}

impl TokenView {
    fn new(t: Token, secret: Option<String>) -> TokenView {
        TokenView {
            id: t.id,
            name: t.name,
            prefix: t.prefix,
            created_at: ts(t.created_at),
            last_used_at: t.last_used_at.map(ts),
            revoked_at: t.revoked_at.map(ts),
            token: secret,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateUser {
    email: String,
    name: String,
    role: Role,
    password: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchUser {
    name: Option<String>,
    role: Option<Role>,
    password: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    name: String,
}

/// Shortest console password.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Hash a console password with argon2id (OWASP defaults), on a blocking thread.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > 1024 {
        return Err(ApiError::bad_request(
            "invalid",
            format!("password must be {MIN_PASSWORD_CHARS} to 1024 characters long"),
        ));
    }
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt_bytes: [u8; 16] = rand::random();
        let salt = SaltString::encode_b64(&salt_bytes)
            .map_err(|e| ApiError::internal(format!("cannot encode the salt: {e}")))?;
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::internal(format!("cannot hash the password: {e}")))
    })
    .await
    .map_err(|e| ApiError::internal(format!("hashing task failed: {e}")))?
}

/// The user the token belongs to.
#[utoipa::path(get, path = "/api/v1/me", tag = "users", responses((status = 200, body = UserView), (status = 401, body = super::ErrorBody)))]
pub async fn me(caller: Caller) -> Json<UserView> {
    Json(caller.user.into())
}

/// All users.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", responses((status = 200, body = Vec<UserView>)))]
pub async fn list(State(app): State<Arc<App>>) -> Result<Json<Vec<UserView>>, ApiError> {
    Ok(Json(
        app.store
            .users()
            .await?
            .into_iter()
            .map(UserView::from)
            .collect(),
    ))
}

/// One user.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = UserView), (status = 404, body = super::ErrorBody)))]
pub async fn get(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(app.store.user(&id).await?.into()))
}

/// Create a user (owners).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser,
    responses((status = 201, body = UserView), (status = 400, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let password_hash = match body.password {
        Some(p) => Some(hash_password(p).await?),
        None => None,
    };
    let user = app
        .store
        .create_user(
            NewUser {
                email: body.email,
                name: body.name,
                role: body.role,
                password_hash,
            },
            &caller.actor(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Change a user's name, role or password (owners).
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path, description = "User id")), request_body = PatchUser,
    responses((status = 200, body = UserView), (status = 400, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn patch(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PatchUser>,
) -> Result<Json<UserView>, ApiError> {
    let password_hash = match body.password {
        Some(p) => Some(hash_password(p).await?),
        None => None,
    };
    let (_, after) = app
        .store
        .update_user(
            &id,
            UserPatch {
                name: body.name,
                role: body.role,
                password_hash,
            },
            &caller.actor(),
        )
        .await?;
    Ok(Json(after.into()))
}

/// Delete a user and their tokens (owners).
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path, description = "User id")), responses((status = 204), (status = 409, body = super::ErrorBody)))]
pub async fn delete(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.store.delete_user(&id, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's API tokens, without secrets (owners).
#[utoipa::path(get, path = "/api/v1/users/{id}/tokens", tag = "users", params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = Vec<TokenView>)))]
pub async fn tokens(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    Ok(Json(
        app.store
            .tokens(&id)
            .await?
            .into_iter()
            .map(|t| TokenView::new(t, None))
            .collect(),
    ))
}

/// Create an API token; its secret is in this answer only (owners).
#[utoipa::path(post, path = "/api/v1/users/{id}/tokens", tag = "users", params(("id" = String, Path, description = "User id")), request_body = CreateToken,
    responses((status = 201, body = TokenView), (status = 404, body = super::ErrorBody)))]
pub async fn create_token(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<TokenView>), ApiError> {
    let (token, secret) = app
        .store
        .create_token(&id, &body.name, &caller.actor())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenView::new(token, Some(secret))),
    ))
}

/// Revoke a token at once (owners).
#[utoipa::path(delete, path = "/api/v1/users/{id}/tokens/{token_id}", tag = "users",
    params(("id" = String, Path, description = "User id"), ("token_id" = String, Path, description = "Token id")),
    responses((status = 200, body = TokenView), (status = 404, body = super::ErrorBody)))]
pub async fn revoke_token(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((id, token_id)): Path<(String, String)>,
) -> Result<Json<TokenView>, ApiError> {
    let token = app
        .store
        .revoke_token(&id, &token_id, &caller.actor())
        .await?;
    Ok(Json(TokenView::new(token, None)))
}
