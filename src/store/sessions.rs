//! Console sessions: a random secret in an `HttpOnly` cookie, stored here as its SHA-256 digest,
//! with a CSRF token and an absolute expiry.

use rusqlite::{OptionalExtension, params};

use super::users::token_digest;
use super::{ControlStore, StoreResult, User, new_secret};
use crate::clock;

/// A live session.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    /// Every state-changing form carries this.
    pub csrf: String,
    pub expires_at: i64,
}

impl ControlStore {
    /// Start a session for a user; returns the cookie secret.
    pub async fn create_session(&self, user_id: &str, lifetime_ms: i64) -> StoreResult<String> {
        let user_id = user_id.to_owned();
        self.call(move |conn| {
            let secret = new_secret(43);
            let now = clock::now_ms();
            // Expired sessions go whenever a new one starts.
            conn.execute("DELETE FROM sessions WHERE expires_at < ?1", [now])?;
            conn.execute(
                "INSERT INTO sessions(hash, user_id, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![token_digest(&secret), user_id, new_secret(32), now, now + lifetime_ms],
            )?;
            Ok(secret)
        })
        .await
    }

    /// The session behind a cookie secret, if it exists and has not expired.
    pub async fn session(&self, secret: &str) -> StoreResult<Option<Session>> {
        let digest = token_digest(secret);
        self.call(move |conn| {
            let row: Option<(String, String, i64)> = conn
                .query_row(
                    "SELECT user_id, csrf, expires_at FROM sessions WHERE hash = ?1 AND expires_at > ?2",
                    params![digest, clock::now_ms()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let Some((user_id, csrf, expires_at)) = row else { return Ok(None) };
            let user = super::users::get_user_pub(conn, &user_id)?;
            Ok(Some(Session { user, csrf, expires_at }))
        })
        .await
    }

    pub async fn end_session(&self, secret: &str) -> StoreResult<()> {
        let digest = token_digest(secret);
        self.call(move |conn| {
            conn.execute("DELETE FROM sessions WHERE hash = ?1", [digest])?;
            Ok(())
        })
        .await
    }
}
