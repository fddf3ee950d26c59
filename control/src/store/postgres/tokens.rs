//! Customer API tokens in PostgreSQL: `ipgate_tokens` maps a token's
//! SHA-256 (hex) to its record ([`ApiToken`]), so a call is one lookup;
//! the username beside it lists a user's tokens. Issuing and revoking are
//! each one change with their security-log record. (Tokens from before
//! records are a sled store's alone: a PostgreSQL store never had them.)

use super::users::locked_user;
use super::{doc, pg_error, read, PgStore};
use crate::domain::tokens::ApiToken;
use crate::domain::AccountId;
use crate::seclog::{Actor, Event};
use crate::store::{StoreError, TokenStore};
use async_trait::async_trait;
use serde_json::json;
use tokio_postgres::GenericClient;

/// A user's tokens, oldest first (as the sled store orders them: by id,
/// ties by hash), with the hash each is stored under.
async fn tokens_with_hashes<C: GenericClient + Sync>(
    c: &C,
    username: &str,
    lock: bool,
) -> Result<Vec<(String, ApiToken)>, StoreError> {
    let sql = if lock {
        "SELECT hash, doc FROM ipgate_tokens WHERE username = $1 ORDER BY hash COLLATE \"C\" FOR UPDATE"
    } else {
        "SELECT hash, doc FROM ipgate_tokens WHERE username = $1 ORDER BY hash COLLATE \"C\""
    };
    let rows = c.query(sql, &[&username]).await.map_err(pg_error)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let hash: String = r.try_get(0).map_err(pg_error)?;
        let t: ApiToken = read(r, 1)?;
        if t.username == username {
            out.push((hash, t));
        }
    }
    out.sort_by_key(|(_, t)| t.id.parse::<u64>().unwrap_or(u64::MAX));
    Ok(out)
}

#[async_trait]
impl TokenStore for PgStore {
    /// Stores `token` (its id assigned here) under `token_hash` for its
    /// user, who must exist.
    async fn issue_token(
        &self,
        token: ApiToken,
        token_hash: &str,
        actor: &Actor,
    ) -> Result<ApiToken, StoreError> {
        self.retrying(|| async {
            let mut c = self.client().await?;
            let mut w = self.begin(&mut c).await?;
            let mut token = token.clone();
            token.id = PgStore::next_id(&w).await?.to_string();
            let Some(u) = locked_user(&w, &token.username).await? else {
                return Err(StoreError::NoUser(token.username.clone()));
            };
            w.tx.execute(
                "INSERT INTO ipgate_tokens (hash, username, doc) VALUES ($1, $2, $3)
                 ON CONFLICT (hash) DO UPDATE SET username = EXCLUDED.username, doc = EXCLUDED.doc",
                &[&token_hash, &token.username, &doc(&token)],
            )
            .await
            .map_err(pg_error)?;
            let e = Event {
                event: "user.token_issued",
                account: Some(u.account.as_str()),
                details: json!({
                    "username": token.username,
                    "token_id": token.id,
                    "fingerprint": token.fingerprint,
                    "scopes": token.scope_names(),
                    "expires_at": token.expires_at,
                }),
            };
            w.log(actor, &e).await?;
            w.commit().await?;
            Ok(token)
        })
        .await
    }

    /// The record of the token hashing to `token_hash` (hex).
    async fn token(&self, token_hash: &str) -> Result<Option<ApiToken>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT doc FROM ipgate_tokens WHERE hash = $1",
                &[&token_hash],
            )
            .await
            .map_err(pg_error)?;
        row.map(|r| read(&r, 0)).transpose()
    }

    /// A user's tokens, oldest first.
    async fn tokens_of(&self, username: &str) -> Result<Vec<ApiToken>, StoreError> {
        let c = self.client().await?;
        Ok(tokens_with_hashes(&**c, username, false)
            .await?
            .into_iter()
            .map(|(_, t)| t)
            .collect())
    }

    /// Revokes token `id` of `username`: the token stops working at once.
    async fn revoke_token(
        &self,
        username: &str,
        id: &str,
        actor: &Actor,
    ) -> Result<ApiToken, StoreError> {
        let no_token = || StoreError::NoToken(id.to_string());
        self.retrying(|| async {
            let mut c = self.client().await?;
            let mut w = self.begin(&mut c).await?;
            let (hash, t) = tokens_with_hashes(&*w.tx, username, true)
                .await?
                .into_iter()
                .find(|(_, t)| t.id == id)
                .ok_or_else(no_token)?;
            w.tx.execute("DELETE FROM ipgate_tokens WHERE hash = $1", &[&hash])
                .await
                .map_err(pg_error)?;
            let account = locked_user(&w, username).await?.map(|u| u.account);
            let e = Event {
                event: "user.token_revoked",
                account: account.as_ref().map(AccountId::as_str),
                details: json!({
                    "username": username,
                    "token_id": t.id,
                    "fingerprint": t.fingerprint,
                }),
            };
            w.log(actor, &e).await?;
            w.commit().await?;
            Ok(t)
        })
        .await
    }
}
