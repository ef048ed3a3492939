//! The store and driver behind one object-safe trait, so the web layer ([`crate::endpoints`])
//! and the adapters' handlers need no type parameters (a Rocket `#[get]` handler or an axum
//! state cannot be generic over the store).

use std::future::Future;
use std::pin::Pin;

use crate::driver::{self, AuthorizeResult, DriverError, LogoutResult};
use crate::grants::Grants;
use crate::{Store, StoreResult};
use oidc_flow::authorize::{PendingAuthorization, PendingView, Resumed};
use oidc_flow::flow::{AuthorizeStep, LogoutStep};
use oidc_flow::{
    AccessTokenRecord, Authentication, ErrorPage, JsonResponse, Provider, SecretHash, UserInfo,
};
use std::sync::Arc;
use time::OffsetDateTime;

/// A boxed, sendable future.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the adapter asks of the store and the driver; each method is one driver call or
/// one store call.
pub(crate) trait Backend: Send + Sync + 'static {
    /// [`driver::authorize`].
    fn authorize<'a>(
        &'a self,
        provider: &'a Provider,
        step: AuthorizeStep,
        session: Option<Authentication>,
        browser: &'a str,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<AuthorizeResult, DriverError>>;

    /// [`driver::token`].
    fn token<'a>(
        &'a self,
        provider: &'a Provider,
        grants: &'a Grants,
        form: &'a [u8],
        authorization: Option<&'a [u8]>,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<JsonResponse, DriverError>>;

    /// [`driver::revoke`].
    fn revoke<'a>(
        &'a self,
        provider: &'a Provider,
        form: &'a [u8],
        authorization: Option<&'a [u8]>,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<JsonResponse, DriverError>>;

    /// [`driver::introspect`].
    fn introspect<'a>(
        &'a self,
        provider: &'a Provider,
        form: &'a [u8],
        authorization: Option<&'a [u8]>,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<JsonResponse, DriverError>>;

    /// [`driver::userinfo`].
    fn userinfo<'a>(
        &'a self,
        provider: &'a Provider,
        authorization: Option<&'a [u8]>,
        form: Option<&'a [u8]>,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<JsonResponse, DriverError>>;

    /// [`driver::open_parked`].
    fn open_parked(
        &self,
        sealed: &str,
        browser: &str,
        now: OffsetDateTime,
    ) -> Result<PendingAuthorization, ErrorPage>;

    /// [`driver::view_parked`].
    fn view_parked<'a>(
        &'a self,
        pending: &'a PendingAuthorization,
    ) -> BoxFuture<'a, StoreResult<Result<PendingView, ErrorPage>>>;

    /// [`driver::unpark`].
    fn unpark(
        &self,
        pending: PendingAuthorization,
    ) -> BoxFuture<'_, StoreResult<Result<Resumed, ErrorPage>>>;

    /// [`Store::put_session`].
    fn put_session<'a>(
        &'a self,
        id: SecretHash,
        session: Authentication,
        expires_at: OffsetDateTime,
    ) -> BoxFuture<'a, StoreResult<()>>;

    /// [`Store::session`].
    fn session<'a>(
        &'a self,
        id: SecretHash,
        now: OffsetDateTime,
        idle_timeout: time::Duration,
    ) -> BoxFuture<'a, StoreResult<Option<Authentication>>>;

    /// [`Store::access_token`].
    fn access_token<'a>(
        &'a self,
        hash: &'a SecretHash,
    ) -> BoxFuture<'a, StoreResult<Option<AccessTokenRecord>>>;

    /// [`driver::logout`].
    fn logout<'a>(
        &'a self,
        provider: &'a Provider,
        step: LogoutStep,
        session: Option<Authentication>,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<LogoutResult, DriverError>>;

    /// [`Store::user_claims`] (the app's claims), for naming the person on a page.
    fn user_claims<'a>(&'a self, subject: &'a str) -> BoxFuture<'a, StoreResult<Option<UserInfo>>>;

    /// [`Store::purge_expired`], for the purge schedule.
    fn purge_expired(&self, now: OffsetDateTime) -> BoxFuture<'_, StoreResult<u64>>;
}

/// A shared store as a [`Backend`].
pub(crate) struct Shared<S>(pub(crate) Arc<S>);

impl<S: Store> Backend for Shared<S> {
    fn logout<'a>(
        &'a self,
        provider: &'a Provider,
        step: LogoutStep,
        session: Option<Authentication>,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<LogoutResult, DriverError>> {
        Box::pin(driver::logout(&*self.0, provider, step, session, now))
    }

    fn user_claims<'a>(&'a self, subject: &'a str) -> BoxFuture<'a, StoreResult<Option<UserInfo>>> {
        Box::pin(Store::user_claims(&*self.0, subject))
    }

    fn purge_expired(&self, now: OffsetDateTime) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(Store::purge_expired(&*self.0, now))
    }

    fn authorize<'a>(
        &'a self,
        provider: &'a Provider,
        step: AuthorizeStep,
        session: Option<Authentication>,
        browser: &'a str,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<AuthorizeResult, DriverError>> {
        Box::pin(driver::authorize(
            &*self.0, provider, step, session, browser, now,
        ))
    }

    fn token<'a>(
        &'a self,
        provider: &'a Provider,
        grants: &'a Grants,
        form: &'a [u8],
        authorization: Option<&'a [u8]>,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<JsonResponse, DriverError>> {
        Box::pin(driver::token(
            &*self.0,
            provider,
            grants,
            form,
            authorization,
            now,
        ))
    }

    fn revoke<'a>(
        &'a self,
        provider: &'a Provider,
        form: &'a [u8],
        authorization: Option<&'a [u8]>,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<JsonResponse, DriverError>> {
        Box::pin(driver::revoke(provider, &*self.0, form, authorization, now))
    }

    fn introspect<'a>(
        &'a self,
        provider: &'a Provider,
        form: &'a [u8],
        authorization: Option<&'a [u8]>,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<JsonResponse, DriverError>> {
        Box::pin(driver::introspect(
            provider,
            &*self.0,
            form,
            authorization,
            now,
        ))
    }

    fn userinfo<'a>(
        &'a self,
        provider: &'a Provider,
        authorization: Option<&'a [u8]>,
        form: Option<&'a [u8]>,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<JsonResponse, DriverError>> {
        Box::pin(driver::userinfo(
            &*self.0,
            provider,
            authorization,
            form,
            now,
        ))
    }

    fn open_parked(
        &self,
        sealed: &str,
        browser: &str,
        now: OffsetDateTime,
    ) -> Result<PendingAuthorization, ErrorPage> {
        driver::open_parked(&*self.0, sealed, browser, now)
    }

    fn view_parked<'a>(
        &'a self,
        pending: &'a PendingAuthorization,
    ) -> BoxFuture<'a, StoreResult<Result<PendingView, ErrorPage>>> {
        Box::pin(driver::view_parked(&*self.0, pending))
    }

    fn unpark(
        &self,
        pending: PendingAuthorization,
    ) -> BoxFuture<'_, StoreResult<Result<Resumed, ErrorPage>>> {
        Box::pin(driver::unpark(&*self.0, pending))
    }

    fn put_session<'a>(
        &'a self,
        id: SecretHash,
        session: Authentication,
        expires_at: OffsetDateTime,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move { Store::put_session(&*self.0, &id, &session, expires_at).await })
    }

    fn session<'a>(
        &'a self,
        id: SecretHash,
        now: OffsetDateTime,
        idle_timeout: time::Duration,
    ) -> BoxFuture<'a, StoreResult<Option<Authentication>>> {
        Box::pin(async move { Store::session(&*self.0, &id, now, idle_timeout).await })
    }

    fn access_token<'a>(
        &'a self,
        hash: &'a SecretHash,
    ) -> BoxFuture<'a, StoreResult<Option<AccessTokenRecord>>> {
        Box::pin(Store::access_token(&*self.0, hash))
    }
}
