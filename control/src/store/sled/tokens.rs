//! Customer API tokens in the store. The `tokens` tree maps a token's
//! SHA-256 (hex) to its record ([`ApiToken`]), so a call is one lookup.
//! Issuing and revoking are each one transaction with their
//! security-log record.
//!
//! A store made before token records mapped the hash to the username
//! alone; [`SledStore::ensure_token_records`] turns those into records (full
//! scope, no expiry: what they allowed before) when the store is opened.

use super::{abort, decode, encode, flatten, parse_sha256, SledStore, StoreError};
use crate::domain::tokens::ApiToken;
use crate::domain::users::User;
use crate::domain::AccountId;
use crate::seclog::{self, Actor, Event};
use crate::store::TokenStore;
use async_trait::async_trait;
use serde_json::json;
use sled::transaction::{Transactional, TransactionalTree};

/// The `meta` key saying every token has a record.
const READY: &[u8] = b"token-records";
const VERSION: &[u8] = b"1";

impl SledStore {
    /// Gives every token from before token records a record. Runs at
    /// open, before anything else can write.
    pub(crate) fn ensure_token_records(&self) -> Result<(), StoreError> {
        if self.meta.get(READY)?.as_deref() == Some(VERSION) {
            return Ok(());
        }
        let mut converted = 0u64;
        for item in self.tokens.iter() {
            let (hash_hex, value) = item?;
            if decode::<ApiToken>(&value).is_ok() {
                continue;
            }
            let username = String::from_utf8_lossy(&value).into_owned();
            let hash = parse_sha256(&String::from_utf8_lossy(&hash_hex))
                .ok_or_else(|| StoreError::Corrupt("a token hash is not SHA-256 hex".into()))?;
            let mut record = ApiToken::legacy(&username, &hash);
            record.id = self.next_id()?.to_string();
            // Only the value seen above is replaced: nothing else writes yet.
            let _ = self.tokens.compare_and_swap(
                &hash_hex,
                Some(value.as_ref()),
                Some(encode(&record)),
            )?;
            converted += 1;
        }
        self.meta.insert(READY, VERSION)?;
        self.db.flush()?;
        if converted > 0 {
            tracing::warn!(
                tokens = converted,
                "API tokens issued before tokens expired now have records: they keep full scope \
                 and never expire; list them with `ipgate admin token list USER`, issue \
                 replacements and revoke them"
            );
        }
        Ok(())
    }

    /// A user's tokens, oldest first, with the hash each is stored under.
    fn tokens_with_hashes(&self, username: &str) -> Result<Vec<(Vec<u8>, ApiToken)>, StoreError> {
        let mut out = Vec::new();
        for item in self.tokens.iter() {
            let (k, v) = item?;
            let t: ApiToken = decode(&v)?;
            if t.username == username {
                out.push((k.to_vec(), t));
            }
        }
        out.sort_by_key(|(_, t)| t.id.parse::<u64>().unwrap_or(u64::MAX));
        Ok(out)
    }

    /// Stores `username` under `token_hash` the way ipgate did before token
    /// records, and forgets that the records were made.
    #[cfg(test)]
    pub(crate) fn add_legacy_token(
        &self,
        token_hash: &str,
        username: &str,
    ) -> Result<(), StoreError> {
        self.tokens
            .insert(token_hash.as_bytes(), username.as_bytes())?;
        self.meta.remove(READY)?;
        Ok(())
    }
}

#[async_trait]
impl TokenStore for SledStore {
    /// Stores `token` (its id assigned here) under `token_hash` for its
    /// user, who must exist.
    async fn issue_token(
        &self,
        mut token: ApiToken,
        token_hash: &str,
        actor: &Actor,
    ) -> Result<ApiToken, StoreError> {
        token.id = self.next_id()?.to_string();
        let value = encode(&token);
        flatten((&self.users, &self.tokens, &self.seclog).transaction(
            |(users, tokens, log): &(TransactionalTree, TransactionalTree, TransactionalTree)| {
                let Some(u) = users.get(token.username.as_bytes())? else {
                    return abort(StoreError::NoUser(token.username.clone()));
                };
                let u: User = decode(&u).or_else(abort)?;
                tokens.insert(token_hash.as_bytes(), value.as_slice())?;
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
                seclog::append(log, &self.log_key, actor, &e)?;
                Ok(())
            },
        ))?;
        self.flush().await?;
        Ok(token)
    }

    /// The record of the token hashing to `token_hash` (hex).
    async fn token(&self, token_hash: &str) -> Result<Option<ApiToken>, StoreError> {
        self.tokens
            .get(token_hash.as_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    /// A user's tokens, oldest first.
    async fn tokens_of(&self, username: &str) -> Result<Vec<ApiToken>, StoreError> {
        Ok(self
            .tokens_with_hashes(username)?
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
        let (hash, _) = self
            .tokens_with_hashes(username)?
            .into_iter()
            .find(|(_, t)| t.id == id)
            .ok_or_else(no_token)?;
        let removed = flatten((&self.users, &self.tokens, &self.seclog).transaction(
            |(users, tokens, log): &(TransactionalTree, TransactionalTree, TransactionalTree)| {
                let Some(v) = tokens.remove(hash.as_slice())? else {
                    return abort(no_token());
                };
                let t: ApiToken = decode(&v).or_else(abort)?;
                if t.id != id || t.username != username {
                    return abort(no_token());
                }
                let account = match users.get(username.as_bytes())? {
                    Some(u) => Some(decode::<User>(&u).or_else(abort)?.account),
                    None => None,
                };
                let e = Event {
                    event: "user.token_revoked",
                    account: account.as_ref().map(AccountId::as_str),
                    details: json!({
                        "username": username,
                        "token_id": t.id,
                        "fingerprint": t.fingerprint,
                    }),
                };
                seclog::append(log, &self.log_key, actor, &e)?;
                Ok(t)
            },
        ))?;
        self.flush().await?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::tokens::Scope;
    use crate::domain::users::{token_hash, Role, User};
    use crate::domain::Timestamp;
    use crate::store::tests::{account, op, open};
    use crate::store::{AccountStore, UserStore};

    fn alice() -> User {
        User {
            username: "alice".into(),
            account: "acme".parse().unwrap(),
            role: Role::Main,
            password_hash: String::new(),
            totp_secret: None,
            totp_last_step: None,
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
        }
    }

    #[tokio::test]
    async fn tokens_from_before_records_keep_working_with_full_scope() {
        let dir = tempfile::tempdir().unwrap();
        let old = token_hash("an old token");
        {
            let s = crate::store::tests::open_sled(&dir);
            s.create_account(account("acme"), &op()).await.unwrap();
            s.create_user(alice(), &op()).await.unwrap();
            s.add_legacy_token(&old, "alice").unwrap();
        }
        let s = open(&dir);
        let t = s
            .token(&old)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("the old token is gone"));
        assert_eq!(t.username, "alice");
        assert_eq!(t.scopes, Scope::ALL.to_vec());
        assert_eq!((t.expires_at, t.created_at), (None, None));
        assert!(!t.id.is_empty());
        let listed = s.tokens_of("alice").await.unwrap_or_default();
        assert_eq!(listed, vec![t.clone()]);
        let revoked = s.revoke_token("alice", &t.id, &op()).await;
        assert_eq!(revoked.ok(), Some(t));
        assert_eq!(s.token(&old).await.ok().flatten(), None);
        drop(s);
        // Reopening converts nothing twice.
        let s = open(&dir);
        assert!(s.tokens_of("alice").await.unwrap_or_default().is_empty());
    }
}
