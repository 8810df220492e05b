//! Users and their API tokens. Tokens are stored as SHA-256 digests; the secret is shown once.

use rusqlite::{Connection, OptionalExtension, Row, params};
use sha2::{Digest, Sha256};

use super::model::validate_name;
use super::{
    Actor, ControlStore, Role, StoreError, StoreResult, Token, User, audit, conflict_on_unique,
    new_id, new_secret,
};
use crate::clock;

#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub name: String,
    pub role: Role,
    /// Already hashed (argon2 PHC string).
    pub password_hash: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub password_hash: Option<String>,
}

/// Tokens look like `slc_` followed by 40 alphanumerics (about 238 bits).
pub const TOKEN_PREFIX: &str = "slc_";

pub fn token_digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        email: r.get(1)?,
        name: r.get(2)?,
        role: Role::parse(&r.get::<_, String>(3)?).unwrap_or(Role::Viewer),
        has_password: r.get::<_, Option<String>>(4)?.is_some(),
        created_at: r.get(5)?,
    })
}

const USER_COLUMNS: &str = "id, email, name, role, password_hash, created_at";

fn token_from_row(r: &Row<'_>) -> rusqlite::Result<Token> {
    Ok(Token {
        id: r.get(0)?,
        user_id: r.get(1)?,
        name: r.get(2)?,
        prefix: r.get(3)?,
        created_at: r.get(4)?,
        last_used_at: r.get(5)?,
        revoked_at: r.get(6)?,
    })
}

const TOKEN_COLUMNS: &str = "id, user_id, name, prefix, created_at, last_used_at, revoked_at";

pub(super) fn get_user_pub(conn: &Connection, id: &str) -> StoreResult<User> {
    get_user(conn, id)
}

fn get_user(conn: &Connection, id: &str) -> StoreResult<User> {
    conn.query_row(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
        [id],
        user_from_row,
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("no user with id {id}")))
}

fn validate_email(email: &str) -> StoreResult<()> {
    let ok = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{email:?} is not an email address"
        )))
    }
}

fn insert_token(conn: &Connection, user_id: &str, name: &str, secret: &str) -> StoreResult<Token> {
    let id = new_id("tok", 12);
    conn.execute(
        "INSERT INTO tokens(id, user_id, name, hash, prefix, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, user_id, name, token_digest(secret), &secret[..TOKEN_PREFIX.len() + 4], clock::now_ms()],
    )
    .map_err(|e| conflict_on_unique(e, |_| "this token already exists".into()))?;
    Ok(conn.query_row(
        &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?1"),
        [&id],
        token_from_row,
    )?)
}

impl ControlStore {
    pub async fn users(&self) -> StoreResult<Vec<User>> {
        self.call(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {USER_COLUMNS} FROM users ORDER BY created_at, id"
            ))?;
            let rows = stmt.query_map([], user_from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn user(&self, id: &str) -> StoreResult<User> {
        let id = id.to_owned();
        self.call(move |conn| get_user(conn, &id)).await
    }

    pub async fn user_count(&self) -> StoreResult<i64> {
        self.call(|conn| Ok(conn.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?))
            .await
    }

    pub async fn create_user(&self, new: NewUser, actor: &Actor) -> StoreResult<User> {
        validate_email(&new.email)?;
        validate_name("user", &new.name)?;
        let actor = actor.clone();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let id = new_id("usr", 12);
            tx.execute(
                "INSERT INTO users(id, email, name, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, new.email.to_lowercase(), new.name, new.role.as_str(), new.password_hash, clock::now_ms()],
            )
            .map_err(|e| conflict_on_unique(e, |_| "a user with this email already exists".into()))?;
            let created = get_user(&tx, &id)?;
            audit::record(&tx, &actor, "user.created", "user", &id, None, Some(created.audit_json()))?;
            tx.commit()?;
            Ok(created)
        })
        .await
    }

    pub async fn update_user(
        &self,
        id: &str,
        patch: UserPatch,
        actor: &Actor,
    ) -> StoreResult<(User, User)> {
        if let Some(name) = &patch.name {
            validate_name("user", name)?;
        }
        let id = id.to_owned();
        let actor = actor.clone();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let before = get_user(&tx, &id)?;
            if before.role == Role::Owner && patch.role.is_some_and(|r| r != Role::Owner) {
                let owners: i64 =
                    tx.query_row("SELECT COUNT(*) FROM users WHERE role = 'owner'", [], |r| {
                        r.get(0)
                    })?;
                if owners <= 1 {
                    return Err(StoreError::Conflict(
                        "cannot demote the last owner; promote another user first".into(),
                    ));
                }
            }
            if let Some(name) = &patch.name {
                tx.execute(
                    "UPDATE users SET name = ?2 WHERE id = ?1",
                    params![id, name],
                )?;
            }
            if let Some(role) = patch.role {
                tx.execute(
                    "UPDATE users SET role = ?2 WHERE id = ?1",
                    params![id, role.as_str()],
                )?;
            }
            if let Some(hash) = &patch.password_hash {
                tx.execute(
                    "UPDATE users SET password_hash = ?2 WHERE id = ?1",
                    params![id, hash],
                )?;
            }
            let after = get_user(&tx, &id)?;
            if before != after || patch.password_hash.is_some() {
                let action = if patch.password_hash.is_some() && before == after {
                    "user.password_changed"
                } else {
                    "user.updated"
                };
                audit::record(
                    &tx,
                    &actor,
                    action,
                    "user",
                    &id,
                    Some(before.audit_json()),
                    Some(after.audit_json()),
                )?;
            }
            tx.commit()?;
            Ok((before, after))
        })
        .await
    }

    pub async fn delete_user(&self, id: &str, actor: &Actor) -> StoreResult<User> {
        let id = id.to_owned();
        let actor = actor.clone();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let before = get_user(&tx, &id)?;
            if before.role == Role::Owner {
                let owners: i64 =
                    tx.query_row("SELECT COUNT(*) FROM users WHERE role = 'owner'", [], |r| {
                        r.get(0)
                    })?;
                if owners <= 1 {
                    return Err(StoreError::Conflict("cannot delete the last owner".into()));
                }
            }
            tx.execute("DELETE FROM users WHERE id = ?1", [&id])?;
            audit::record(
                &tx,
                &actor,
                "user.deleted",
                "user",
                &id,
                Some(before.audit_json()),
                None,
            )?;
            tx.commit()?;
            Ok(before)
        })
        .await
    }

    /// The password hash of the user with this email, for console login.
    pub async fn password_hash(&self, email: &str) -> StoreResult<Option<(User, String)>> {
        let email = email.to_lowercase();
        self.call(move |conn| {
            let row = conn
                .query_row(
                    &format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?1"),
                    [&email],
                    |r| Ok((user_from_row(r)?, r.get::<_, Option<String>>(4)?)),
                )
                .optional()?;
            Ok(row.and_then(|(user, hash)| hash.map(|h| (user, h))))
        })
        .await
    }

    /// Create a token for a user; returns it with its secret (to be shown once).
    pub async fn create_token(
        &self,
        user_id: &str,
        name: &str,
        actor: &Actor,
    ) -> StoreResult<(Token, String)> {
        validate_name("token", name)?;
        let user_id = user_id.to_owned();
        let name = name.to_owned();
        let actor = actor.clone();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            get_user(&tx, &user_id)?;
            let secret = format!("{TOKEN_PREFIX}{}", new_secret(40));
            let token = insert_token(&tx, &user_id, &name, &secret)?;
            audit::record(
                &tx,
                &actor,
                "token.created",
                "token",
                &token.id,
                None,
                Some(token.audit_json()),
            )?;
            tx.commit()?;
            Ok((token, secret))
        })
        .await
    }

    pub async fn tokens(&self, user_id: &str) -> StoreResult<Vec<Token>> {
        let user_id = user_id.to_owned();
        self.call(move |conn| {
            get_user(conn, &user_id)?;
            let mut stmt = conn.prepare(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens WHERE user_id = ?1 ORDER BY created_at, id"
            ))?;
            let rows = stmt.query_map([&user_id], token_from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Revoke a token (it stays listed, marked revoked).
    pub async fn revoke_token(
        &self,
        user_id: &str,
        token_id: &str,
        actor: &Actor,
    ) -> StoreResult<Token> {
        let user_id = user_id.to_owned();
        let token_id = token_id.to_owned();
        let actor = actor.clone();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let changed = tx.execute(
                "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?3) WHERE id = ?1 AND user_id = ?2",
                params![token_id, user_id, clock::now_ms()],
            )?;
            if changed == 0 {
                return Err(StoreError::NotFound(format!("no token {token_id} for user {user_id}")));
            }
            let token = tx.query_row(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?1"), [&token_id], token_from_row)?;
            audit::record(&tx, &actor, "token.revoked", "token", &token_id, None, Some(token.audit_json()))?;
            tx.commit()?;
            Ok(token)
        })
        .await
    }

    /// The user behind a bearer secret, if the token exists and is not revoked.
    pub async fn authenticate_token(&self, secret: &str) -> StoreResult<Option<(User, Token)>> {
        let digest = token_digest(secret);
        self.call(move |conn| {
            let found = conn
                .query_row(
                    &format!(
                        "SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = ?1 AND revoked_at IS NULL"
                    ),
                    [&digest],
                    token_from_row,
                )
                .optional()?;
            let Some(token) = found else { return Ok(None) };
            let now = clock::now_ms();
            // Record use at most once a minute, to keep reads cheap.
            if token.last_used_at.is_none_or(|at| now - at > 60_000) {
                conn.execute(
                    "UPDATE tokens SET last_used_at = ?2 WHERE id = ?1",
                    params![token.id, now],
                )?;
            }
            let user = get_user(conn, &token.user_id)?;
            Ok(Some((user, token)))
        })
        .await
    }

    /// First start: create the owner user and its token (from `secret`, or random). Returns the
    /// secret, or `None` when the workspace already has users.
    /// `password_hash` (argon2) lets the owner sign in to the console.
    pub async fn bootstrap_owner(
        &self,
        secret: Option<String>,
        password_hash: Option<String>,
    ) -> StoreResult<Option<String>> {
        if let Some(s) = &secret
            && (s.len() < 16 || s.len() > 200 || !s.chars().all(|c| c.is_ascii_graphic()))
        {
            return Err(StoreError::Invalid(
                "SLUICE_BOOTSTRAP_OWNER_TOKEN must be 16 to 200 printable ASCII characters".into(),
            ));
        }
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let users: i64 = tx.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?;
            if users > 0 {
                return Ok(None);
            }
            let id = new_id("usr", 12);
            tx.execute(
                "INSERT INTO users(id, email, name, role, password_hash, created_at) VALUES (?1, 'owner@localhost', 'Owner', 'owner', ?2, ?3)",
                params![id, password_hash, clock::now_ms()],
            )?;
            let secret = secret.unwrap_or_else(|| format!("{TOKEN_PREFIX}{}", new_secret(40)));
            let token = insert_token(&tx, &id, "bootstrap", &secret)?;
            let system = Actor::system();
            let user = get_user(&tx, &id)?;
            audit::record(&tx, &system, "user.created", "user", &id, None, Some(user.audit_json()))?;
            audit::record(&tx, &system, "token.created", "token", &token.id, None, Some(token.audit_json()))?;
            tx.commit()?;
            Ok(Some(secret))
        })
        .await
    }
}
