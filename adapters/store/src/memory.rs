//! The memory backend: a mutex over hash maps. For tests and single-process demos.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use oidc_flow::authorize::ParkedMark;
use oidc_flow::effect::REVOKED_GRANT_MEMORY;
use oidc_flow::parking::ParkingSecret;
use oidc_flow::{
    AccessTokenRecord, Authentication, Client, CodeRecord, Effect, GrantId, NonceRecord,
    RefreshTokenRecord, Scope, SecretHash, Taken, UserInfo,
};
use time::OffsetDateTime;

use crate::{
    Admin, EndedSession, KeyState, SESSION_TOUCH_INTERVAL, Store, StoreError, StoreResult,
    StoredKey, TAKEN_CODE_GRACE, UserRecord, scope_covers, scope_union, session_alive,
};

#[derive(Default)]
struct Inner {
    clients: HashMap<String, Client>,
    users: HashMap<String, UserRecord>,
    codes: HashMap<SecretHash, (CodeRecord, bool)>,
    access_tokens: HashMap<SecretHash, AccessTokenRecord>,
    refresh_tokens: HashMap<SecretHash, (RefreshTokenRecord, bool)>,
    nonces: HashMap<(String, String), OffsetDateTime>,
    consents: HashMap<(String, String), Scope>,
    revoked: HashMap<GrantId, OffsetDateTime>,
    /// The single-use marks of parked requests that were used, until they expire.
    parked_used: HashMap<SecretHash, OffsetDateTime>,
    sessions: HashMap<SecretHash, Session>,
    /// Per session id, the clients that took part.
    session_clients: HashMap<String, Vec<String>>,
    keys: Vec<StoredKey>,
}

struct Session {
    auth: Authentication,
    expires_at: OffsetDateTime,
    last_used: OffsetDateTime,
}

impl Inner {
    /// Deletes the sessions with this sid and their client rows; returns the clients.
    fn end_session(&mut self, sid: &str) -> Vec<String> {
        self.sessions
            .retain(|_, s| s.auth.sid.as_deref() != Some(sid));
        self.session_clients.remove(sid).unwrap_or_default()
    }
}

/// Everything in memory, lost when the process ends.
///
/// Its parking secret is random: parked requests open only in this process.
pub struct MemoryStore {
    inner: Mutex<Inner>,
    parking: ParkingSecret,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            inner: Mutex::default(),
            parking: ParkingSecret::generate(&mut crate::driver::system_rng()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than stopping service, so a poisoned lock is taken over.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn take<R: Clone>(
    map: &mut HashMap<SecretHash, (R, bool)>,
    hash: &SecretHash,
    grant: impl Fn(&R) -> GrantId,
) -> Taken<R> {
    match map.get_mut(hash) {
        Some((r, taken)) if *taken => Taken::AlreadyTaken(grant(r)),
        Some((r, taken)) => {
            *taken = true;
            Taken::Fresh(r.clone())
        }
        None => Taken::Unknown,
    }
}

impl Store for MemoryStore {
    async fn client(&self, client_id: &str) -> StoreResult<Option<Client>> {
        Ok(self.lock().clients.get(client_id).cloned())
    }

    async fn resource_server(&self, resource: &str) -> StoreResult<Option<Client>> {
        let g = self.lock();
        let mut servers: Vec<&Client> = g
            .clients
            .values()
            .filter(|c| c.resource.as_deref() == Some(resource))
            .collect();
        servers.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(servers.first().map(|c| (*c).clone()))
    }

    async fn add_client(&self, client: &Client) -> StoreResult<()> {
        let mut g = self.lock();
        if g.clients.contains_key(&client.client_id) {
            return Err(StoreError::Duplicate(format!(
                "client {}",
                client.client_id
            )));
        }
        g.clients.insert(client.client_id.clone(), client.clone());
        Ok(())
    }

    async fn user_by_name(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        Ok(self.lock().users.get(username).cloned())
    }

    async fn user_claims(&self, subject: &str) -> StoreResult<Option<UserInfo>> {
        Ok(self
            .lock()
            .users
            .values()
            .find(|u| u.subject == subject)
            .map(|u| u.claims.clone()))
    }

    async fn add_user(&self, user: &UserRecord) -> StoreResult<()> {
        let mut g = self.lock();
        if g.users.contains_key(&user.username)
            || g.users.values().any(|u| u.subject == user.subject)
        {
            return Err(StoreError::Duplicate(format!("user {}", user.username)));
        }
        g.users.insert(user.username.clone(), user.clone());
        Ok(())
    }

    async fn take_code(&self, hash: &SecretHash) -> StoreResult<Taken<CodeRecord>> {
        Ok(take(&mut self.lock().codes, hash, |r| r.grant.clone()))
    }

    async fn take_refresh_token(
        &self,
        hash: &SecretHash,
    ) -> StoreResult<Taken<RefreshTokenRecord>> {
        Ok(take(&mut self.lock().refresh_tokens, hash, |r| {
            r.grant.clone()
        }))
    }

    async fn refresh_token(&self, hash: &SecretHash) -> StoreResult<Option<RefreshTokenRecord>> {
        let g = self.lock();
        Ok(g.refresh_tokens
            .get(hash)
            .filter(|(_, taken)| !taken)
            .map(|(r, _)| r.clone()))
    }

    async fn access_token(&self, hash: &SecretHash) -> StoreResult<Option<AccessTokenRecord>> {
        Ok(self.lock().access_tokens.get(hash).cloned())
    }

    async fn grant_revoked(&self, grant: &GrantId) -> StoreResult<bool> {
        Ok(self.lock().revoked.contains_key(grant))
    }

    async fn claim_nonce(&self, nonce: &NonceRecord, now: OffsetDateTime) -> StoreResult<bool> {
        let mut g = self.lock();
        let key = (nonce.client_id.clone(), nonce.nonce.clone());
        if g.nonces.get(&key).is_some_and(|exp| *exp > now) {
            return Ok(false);
        }
        g.nonces.insert(key, nonce.expires_at);
        Ok(true)
    }

    async fn consented(&self, subject: &str, client_id: &str, scope: &Scope) -> StoreResult<bool> {
        Ok(self
            .lock()
            .consents
            .get(&(subject.to_owned(), client_id.to_owned()))
            .is_some_and(|granted| scope_covers(granted, scope)))
    }

    async fn apply(&self, effects: &[Effect]) -> StoreResult<()> {
        let mut g = self.lock();
        // Check first, then write: all or nothing, like the SQLite transaction.
        for e in effects {
            let grant = match e {
                Effect::StoreAccessToken(r) => Some(&r.grant),
                Effect::StoreRefreshToken(r) => Some(&r.grant),
                Effect::StoreCode(r) => Some(&r.grant),
                _ => None,
            };
            if grant.is_some_and(|g2| g.revoked.contains_key(g2)) {
                return Err(StoreError::GrantRevoked);
            }
        }
        for e in effects {
            match e {
                Effect::StoreCode(r) => {
                    g.codes.insert(r.hash, (r.clone(), false));
                }
                Effect::StoreAccessToken(r) => {
                    g.access_tokens.insert(r.hash, r.clone());
                }
                Effect::StoreRefreshToken(r) => {
                    g.refresh_tokens.insert(r.hash, (r.clone(), false));
                }
                Effect::RememberConsent(c) => {
                    let key = (c.subject.clone(), c.client_id.clone());
                    let merged = match g.consents.get(&key) {
                        Some(old) => scope_union(old, &c.scope),
                        None => c.scope.clone(),
                    };
                    g.consents.insert(key, merged);
                }
                Effect::RevokeGrant(grant) => {
                    g.access_tokens.retain(|_, r| r.grant != *grant);
                    g.refresh_tokens.retain(|_, (r, _)| r.grant != *grant);
                    // Keep taken codes (a later replay must still see AlreadyTaken).
                    g.codes.retain(|_, (r, taken)| *taken || r.grant != *grant);
                    // Remembered as long as an access token of the grant can live.
                    let until = OffsetDateTime::now_utc() + REVOKED_GRANT_MEMORY;
                    g.revoked.insert(grant.clone(), until);
                }
                Effect::JoinSession { sid, client_id } => {
                    let clients = g.session_clients.entry(sid.clone()).or_default();
                    if !clients.contains(client_id) {
                        clients.push(client_id.clone());
                    }
                }
                Effect::EndSession { sid } => {
                    g.end_session(sid);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn parking_secret(&self) -> &ParkingSecret {
        &self.parking
    }

    async fn claim_parked(&self, mark: &ParkedMark) -> StoreResult<bool> {
        let mut g = self.lock();
        if g.parked_used.contains_key(&mark.hash) {
            return Ok(false);
        }
        g.parked_used.insert(mark.hash, mark.expires_at);
        Ok(true)
    }

    async fn put_session(
        &self,
        id: &SecretHash,
        session: &Authentication,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        self.lock().sessions.insert(
            *id,
            Session {
                auth: session.clone(),
                expires_at,
                last_used: session.auth_time,
            },
        );
        Ok(())
    }

    async fn session(
        &self,
        id: &SecretHash,
        now: OffsetDateTime,
        idle_timeout: time::Duration,
    ) -> StoreResult<Option<Authentication>> {
        let mut g = self.lock();
        let Some(s) = g.sessions.get_mut(id) else {
            return Ok(None);
        };
        if !session_alive(s.last_used, s.expires_at, now, idle_timeout) {
            return Ok(None);
        }
        // The same write throttling as SQLite, so both backends answer alike.
        if now - s.last_used > SESSION_TOUCH_INTERVAL {
            s.last_used = now;
        }
        Ok(Some(s.auth.clone()))
    }

    async fn session_clients(&self, sid: &str) -> StoreResult<Vec<String>> {
        Ok(self
            .lock()
            .session_clients
            .get(sid)
            .cloned()
            .unwrap_or_default())
    }

    async fn end_sessions_of(&self, subject: &str) -> StoreResult<Vec<EndedSession>> {
        let mut g = self.lock();
        let mut sids: Vec<String> = g
            .sessions
            .values()
            .filter(|s| s.auth.subject == subject)
            .filter_map(|s| s.auth.sid.clone())
            .collect();
        sids.sort();
        sids.dedup();
        g.sessions.retain(|_, s| s.auth.subject != subject);
        Ok(sids
            .into_iter()
            .map(|sid| {
                let clients = g.session_clients.remove(&sid).unwrap_or_default();
                (sid, clients)
            })
            .collect())
    }

    async fn signing_keys(&self) -> StoreResult<Vec<StoredKey>> {
        let mut keys = self.lock().keys.clone();
        keys.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
        Ok(keys)
    }

    async fn add_signing_key(&self, key: &StoredKey) -> StoreResult<()> {
        let mut g = self.lock();
        if g.keys.iter().any(|k| k.kid == key.kid) {
            return Err(StoreError::Duplicate(format!("key {}", key.kid)));
        }
        g.keys.push(key.clone());
        Ok(())
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let mut g = self.lock();
        let before = g.codes.len()
            + g.access_tokens.len()
            + g.refresh_tokens.len()
            + g.nonces.len()
            + g.parked_used.len()
            + g.sessions.len()
            + g.revoked.len();
        // Taken codes stay a while, so a late replay still revokes its grant (as in SQLite).
        g.codes.retain(|_, (r, taken)| {
            let until = if *taken {
                r.expires_at + TAKEN_CODE_GRACE
            } else {
                r.expires_at
            };
            until > now
        });
        g.access_tokens.retain(|_, r| r.expires_at > now);
        g.refresh_tokens.retain(|_, (r, _)| r.expires_at > now);
        g.nonces.retain(|_, exp| *exp > now);
        g.parked_used.retain(|_, exp| *exp > now);
        g.sessions.retain(|_, s| s.expires_at > now);
        let live: std::collections::HashSet<String> = g
            .sessions
            .values()
            .filter_map(|s| s.auth.sid.clone())
            .collect();
        g.session_clients.retain(|sid, _| live.contains(sid));
        g.revoked.retain(|_, exp| *exp > now);
        let after = g.codes.len()
            + g.access_tokens.len()
            + g.refresh_tokens.len()
            + g.nonces.len()
            + g.parked_used.len()
            + g.sessions.len()
            + g.revoked.len();
        Ok(u64::try_from(before - after).unwrap_or(u64::MAX))
    }
}

impl Admin for MemoryStore {
    async fn clients(&self) -> StoreResult<Vec<Client>> {
        let mut all: Vec<Client> = self.lock().clients.values().cloned().collect();
        all.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(all)
    }

    async fn update_client(&self, client: &Client) -> StoreResult<bool> {
        let mut g = self.lock();
        match g.clients.get_mut(&client.client_id) {
            Some(c) => {
                *c = client.clone();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn remove_client(&self, client_id: &str) -> StoreResult<bool> {
        let mut g = self.lock();
        g.consents.retain(|(_, c), _| c != client_id);
        Ok(g.clients.remove(client_id).is_some())
    }

    async fn users(&self) -> StoreResult<Vec<UserRecord>> {
        let mut all: Vec<UserRecord> = self.lock().users.values().cloned().collect();
        all.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(all)
    }

    async fn update_user(&self, user: &UserRecord) -> StoreResult<bool> {
        let mut g = self.lock();
        match g.users.get_mut(&user.username) {
            Some(u) => {
                u.password_hash = user.password_hash.clone();
                u.claims = user.claims.clone();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn remove_user(&self, username: &str) -> StoreResult<bool> {
        let mut g = self.lock();
        let Some(user) = g.users.remove(username) else {
            return Ok(false);
        };
        g.consents.retain(|(s, _), _| *s != user.subject);
        Ok(true)
    }

    async fn set_key_state(&self, kid: &str, state: KeyState) -> StoreResult<bool> {
        let mut g = self.lock();
        match g.keys.iter_mut().find(|k| k.kid == kid) {
            Some(k) => {
                k.state = state;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn remove_signing_key(&self, kid: &str) -> StoreResult<bool> {
        let mut g = self.lock();
        let before = g.keys.len();
        g.keys.retain(|k| k.kid != kid);
        Ok(g.keys.len() != before)
    }
}
