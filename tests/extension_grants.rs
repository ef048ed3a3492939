//! Extension grants (RFC 6749 §4.5) through the core: the provider declares a grant type, a
//! client registers it, the application's handler decides and the core checks and issues.
//! The handlers here are the smallest honest ones (a password check against a table, a
//! token exchange against the harness's access tokens); the shipped examples are in
//! `adapters/hyper/examples/grants`. ID tokens and JWT access tokens are checked with
//! jsonwebtoken against the provider's JWKS.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{Harness, ISSUER, PresentedForm, TokenForm, secret_of};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use oidc_flow::extension::{ExtensionRequest, GrantDecision};
use oidc_flow::flow::{TokenAnswer, TokenFlow, TokenNeed, TokenStep};
use oidc_flow::secret::SecretHash;
use oidc_flow::{Authentication, Client, ErrorCode, OAuthError, Scope};
use serde::Deserialize;
use serde_json::Value;

const PASSWORD: &str = "password";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// A password grant request (RFC 6749 §4.3.2).
fn password_form(username: &str, password: &str, scope: Option<&str>) -> String {
    TokenForm {
        username: Some(username),
        password: Some(password),
        scope,
        ..TokenForm::grant(PASSWORD)
    }
    .encode()
}

/// A client registered for both extension grants (and refresh), in `format`.
fn app_client(format: &str) -> Client {
    let json = serde_json::json!({
        "client_id": "app",
        "client_secret": secret_of("app"),
        "redirect_uris": [],
        "response_types": [],
        "grant_types": [PASSWORD, "refresh_token", TOKEN_EXCHANGE],
        "scope": "openid profile offline_access api:read api:write",
        "access_token_format": format,
    });
    serde_json::from_value::<Client>(json)
        .unwrap()
        .validate()
        .unwrap()
}

#[derive(Deserialize)]
struct PasswordForm {
    username: String,
    password: String,
    scope: Option<String>,
}

/// The password grant's decision: alice's password is "wonderland".
fn password_handler(request: &ExtensionRequest, h: &Harness) -> Result<GrantDecision, OAuthError> {
    let form: PasswordForm = request.form()?;
    if form.username != "alice" || form.password != "wonderland" {
        return Err(OAuthError::new(
            ErrorCode::InvalidGrant,
            "the username or password is wrong",
        ));
    }
    let scope = match form.scope {
        Some(s) => {
            Scope::parse(&s).map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e.to_string()))?
        }
        None => Scope::parse("openid").unwrap(),
    };
    let authentication = Authentication {
        subject: "alice".to_owned(),
        auth_time: h.now,
        acr: None,
        amr: vec!["pwd".to_owned()],
        sid: None,
    };
    Ok(GrantDecision::for_end_user(authentication, scope).with_refresh_token())
}

#[derive(Deserialize)]
struct ExchangeForm {
    subject_token: String,
    subject_token_type: String,
    scope: Option<String>,
}

/// RFC 8693 impersonation: an access token of this provider for a narrower one.
fn exchange_handler(request: &ExtensionRequest, h: &Harness) -> Result<GrantDecision, OAuthError> {
    let form: ExchangeForm = request.form()?;
    if form.subject_token_type != oidc_flow::extension::ACCESS_TOKEN_TYPE {
        return Err(OAuthError::invalid_request(
            "only access tokens are exchanged",
        ));
    }
    let record = h
        .access_tokens
        .get(&SecretHash::of(&form.subject_token))
        .filter(|r| r.expires_at > h.now && !h.revoked.contains(&r.grant))
        .ok_or_else(|| {
            OAuthError::new(ErrorCode::InvalidGrant, "the subject_token is not active")
        })?;
    let scope = match form.scope {
        Some(s) => {
            Scope::parse(&s).map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e.to_string()))?
        }
        None => record.scope.clone(),
    };
    if scope.not_in(&record.scope).next().is_some() {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "wider than the subject token",
        ));
    }
    Ok(GrantDecision::for_subject(record.subject.clone(), scope)
        .within_grant(record.grant.clone())
        .as_token_exchange())
}

fn harness(format: &str) -> Harness {
    let mut h = Harness::new(|b| b.extension_grant(PASSWORD).extension_grant(TOKEN_EXCHANGE));
    let app = app_client(format);
    h.clients.insert(app.client_id.clone(), app);
    h.extension_grant = Some(Box::new(|request, h| match request.grant_type() {
        PASSWORD => password_handler(request, h),
        TOKEN_EXCHANGE => exchange_handler(request, h),
        other => panic!("asked about {other}"),
    }));
    h
}

fn app_basic() -> String {
    Harness::basic("app")
}

/// Verifies a JWT of the provider with jsonwebtoken against its JWKS; returns the claims.
fn verify(h: &Harness, jwt: &str, audience: &str, typ: Option<&str>) -> Value {
    let header = decode_header(jwt).unwrap();
    assert_eq!(header.typ.as_deref(), typ);
    let jwks: JwkSet = serde_json::from_value(h.provider.jwks()).unwrap();
    let key = DecodingKey::from_jwk(jwks.find(header.kid.as_deref().unwrap()).unwrap()).unwrap();
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[ISSUER]);
    validation.validate_exp = false;
    let claims = decode::<Value>(jwt, &key, &validation).unwrap().claims;
    assert!(claims["exp"].as_i64().unwrap() > h.now.unix_timestamp());
    claims
}

#[test]
fn the_password_grant_issues_an_id_token_and_a_refresh_token_that_refreshes() {
    let mut h = harness("opaque");
    let r = h.token(
        &password_form("alice", "wonderland", Some("openid offline_access")),
        Some(&app_basic()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let body = r.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "openid offline_access");
    assert!(body.get("issued_token_type").is_none(), "{body}");
    let id = verify(&h, body["id_token"].as_str().unwrap(), "app", Some("JWT"));
    assert_eq!(id["sub"], "alice");
    assert_eq!(id["amr"], serde_json::json!(["pwd"]));
    assert!(id.get("nonce").is_none());
    let access = &h.access_tokens[&SecretHash::of(body["access_token"].as_str().unwrap())];
    assert_eq!(
        (access.subject.as_str(), access.client_id.as_str()),
        ("alice", "app")
    );
    // The refresh token is of the same grant and rotates like any other.
    let refresh = body["refresh_token"].as_str().unwrap();
    let again = h.token(&TokenForm::refresh(refresh).encode(), Some(&app_basic()));
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(again.json()["id_token"].is_string());
}

#[test]
fn a_wrong_password_is_the_handlers_error_and_nothing_is_issued() {
    let mut h = harness("opaque");
    let r = h.token(&password_form("alice", "guess", None), Some(&app_basic()));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"], "invalid_grant");
    assert_eq!(
        r.json()["error_description"],
        "the username or password is wrong"
    );
    assert!(h.access_tokens.is_empty() && h.refresh_tokens.is_empty());
}

#[test]
fn a_form_the_handler_cannot_read_is_invalid_request() {
    let mut h = harness("opaque");
    let without_password = TokenForm {
        username: Some("alice"),
        ..TokenForm::grant(PASSWORD)
    };
    let r = h.token(&without_password.encode(), Some(&app_basic()));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"], "invalid_request");
    assert!(
        r.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("password"),
        "{}",
        r.body
    );
}

#[test]
fn an_undeclared_grant_is_unsupported_and_an_unregistered_one_unauthorized() {
    // The provider declares only the password grant here.
    let mut h = Harness::new(|b| b.extension_grant(PASSWORD));
    let app = app_client("opaque");
    h.clients.insert(app.client_id.clone(), app);
    h.extension_grant = Some(Box::new(|_, _| panic!("the handler must not be asked")));
    let form = TokenForm {
        subject_token: Some("x"),
        ..TokenForm::grant(TOKEN_EXCHANGE)
    }
    .encode();
    let r = h.token(&form, Some(&app_basic()));
    assert_eq!(r.json()["error"], "unsupported_grant_type", "{}", r.body);
    // A declared grant the client did not register.
    let r = h.token(
        &password_form("alice", "wonderland", None),
        Some(&Harness::basic("service")),
    );
    assert_eq!(r.json()["error"], "unauthorized_client", "{}", r.body);
    // Discovery lists what is declared, beside the core's grants.
    let doc = oidc_flow::discovery::document(&h.provider);
    let grants = doc["grant_types_supported"].as_array().unwrap();
    assert!(grants.contains(&Value::from(PASSWORD)));
    assert!(!grants.contains(&Value::from(TOKEN_EXCHANGE)));
    assert!(grants.contains(&Value::from("client_credentials")));
}

#[test]
fn the_core_refuses_a_decision_beyond_the_clients_registration() {
    let mut h = harness("opaque");
    // The handler grants whatever is asked; the core holds the line.
    h.extension_grant = Some(Box::new(|request, _| {
        let form: PasswordForm = request.form()?;
        let scope = Scope::parse(form.scope.as_deref().unwrap_or("openid")).unwrap();
        Ok(match form.username.as_str() {
            "client" => GrantDecision::for_client(scope),
            _ => GrantDecision::for_subject(form.username, scope),
        })
    }));
    for (user, scope, why) in [
        ("alice", "admin", "not registered"),
        ("alice", "openid", "end-user"),
        ("client", "offline_access", "end-user"),
        (&"u".repeat(300), "api:read", "subject"),
    ] {
        let form = password_form(user, "x", Some(scope));
        let r = h.token(&form, Some(&app_basic()));
        assert!(r.status >= 400, "{user} {scope}: {}", r.body);
        assert!(
            r.json()["error_description"]
                .as_str()
                .unwrap()
                .contains(why),
            "{user} {scope}: {}",
            r.body
        );
    }
    assert!(h.access_tokens.is_empty());
    // Within the registration, a token for the client itself: no ID token, no refresh.
    let r = h.token(
        &password_form("client", "x", Some("api:read")),
        Some(&app_basic()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert!(body.get("id_token").is_none() && body.get("refresh_token").is_none());
    let record = &h.access_tokens[&SecretHash::of(body["access_token"].as_str().unwrap())];
    assert_eq!(record.subject, "app");
}

#[test]
fn a_token_exchange_narrows_a_token_within_its_grant_and_dies_with_it() {
    let mut h = harness("jwt");
    let (subject_token, _) =
        h.offline_tokens(&common::client_id(oidc_flow::keys::Algorithm::RS256));
    let exchange = |scope| {
        TokenForm {
            subject_token: Some(&subject_token),
            subject_token_type: Some(oidc_flow::extension::ACCESS_TOKEN_TYPE),
            scope: Some(scope),
            ..TokenForm::grant(TOKEN_EXCHANGE)
        }
        .encode()
    };
    let form = exchange("openid");
    // openid speaks for an end-user the exchange did not authenticate.
    let r = h.token(&form, Some(&app_basic()));
    assert_eq!(r.json()["error"], "invalid_scope", "{}", r.body);
    // The token's own scope, narrowed to what the app registered.
    let subject = &h.access_tokens[&SecretHash::of(&subject_token)].clone();
    h.access_tokens
        .get_mut(&SecretHash::of(&subject_token))
        .unwrap()
        .scope = Scope::parse("api:read profile").unwrap();
    let form = exchange("api:read");
    let r = h.token(&form, Some(&app_basic()));
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    // RFC 8693 §2.2.1: issued_token_type and token_type are required.
    assert_eq!(
        body["issued_token_type"],
        oidc_flow::extension::ACCESS_TOKEN_TYPE
    );
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("refresh_token").is_none());
    let exchanged = body["access_token"].as_str().unwrap();
    let claims = verify(&h, exchanged, "app", Some("at+jwt"));
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], "app");
    assert_eq!(claims["scope"], "api:read");
    // A JWT access token is not stored: it names its grant itself.
    assert!(!h.access_tokens.contains_key(&SecretHash::of(exchanged)));
    assert_eq!(
        claims[oidc_flow::token::GRANT_CLAIM],
        subject.grant.as_str(),
        "the exchanged token's grant"
    );
    let introspect = PresentedForm::token(exchanged).encode();
    let active = h.introspect(&introspect, Some(&app_basic()));
    assert_eq!(active.json()["active"], true, "{}", active.body);
    // Revoking the grant (a refresh token replay, a logout) ends the exchanged token too.
    h.apply(vec![oidc_flow::Effect::RevokeGrant(subject.grant.clone())]);
    let after = h.introspect(&introspect, Some(&app_basic()));
    assert_eq!(after.body, r#"{"active":false}"#);
}

#[test]
fn the_erased_flow_asks_the_driver_for_the_decision() {
    let h = harness("opaque");
    let provider = &h.provider;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    use rand_chacha::rand_core::SeedableRng;
    let mut step = TokenFlow::parse(
        password_form("alice", "wonderland", None).as_bytes(),
        Some(app_basic().as_bytes()),
    );
    let mut asked = false;
    let done = loop {
        let flow = match step {
            TokenStep::Done(done) => break done,
            TokenStep::Need(flow) => flow,
        };
        let answer = match flow.need() {
            TokenNeed::Client { client_id } => {
                TokenAnswer::Client(h.clients.get(client_id).cloned())
            }
            TokenNeed::ExtensionGrant(request) => {
                asked = true;
                assert_eq!(request.grant_type(), PASSWORD);
                assert_eq!(request.client().client_id, "app");
                TokenAnswer::ExtensionGrant(password_handler(request, &h))
            }
            other => panic!("unexpected need {other:?}"),
        };
        step = flow.resume(answer, provider, &mut rng, h.now).unwrap();
    };
    assert!(asked);
    assert_eq!(done.response.status, 200, "{}", done.response.body);
    // An access token, a refresh token: what the driver stores.
    assert_eq!(done.effects.len(), 2);
    // A wrong answer to the need is the driver's bug, said so.
    let TokenStep::Need(flow) = TokenFlow::parse(
        password_form("alice", "wonderland", None).as_bytes(),
        Some(app_basic().as_bytes()),
    ) else {
        panic!()
    };
    let TokenStep::Need(flow) = flow
        .resume(
            TokenAnswer::Client(h.clients.get("app").cloned()),
            provider,
            &mut rng,
            h.now,
        )
        .unwrap()
    else {
        panic!()
    };
    let misuse = flow
        .resume(
            TokenAnswer::AssertionClaimed(true),
            provider,
            &mut rng,
            h.now,
        )
        .unwrap_err();
    assert_eq!(misuse.needed, "ExtensionGrant");
}

#[test]
fn a_client_may_register_only_valid_extension_grant_names() {
    for (name, ok) in [
        ("password", true),
        (TOKEN_EXCHANGE, true),
        ("https://grants.example.com/magic", true),
        ("magic", false),
        ("urn:x#frag", false),
    ] {
        let mut json = serde_json::to_value(app_client("opaque")).unwrap();
        json["grant_types"] = serde_json::json!([name]);
        let client: Client = serde_json::from_value(json).unwrap();
        assert_eq!(client.validate().is_ok(), ok, "{name}");
    }
    let bad = oidc_flow::Provider::builder(ISSUER, common::all_keys())
        .extension_grant("client_credentials")
        .build();
    assert!(bad.is_err());
}
