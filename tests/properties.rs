//! Property tests: what is serialized parses back to itself, and the redirect URI rules hold
//! for arbitrary URIs. The fixture (provider, clients) and the redirect-URI checker are those
//! of `fuzz/harness.rs`, shared with the fuzz targets and `tests/fuzz_replay.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "../fuzz/harness.rs"]
mod harness;

use base64::Engine as _;
use oidc_flow::authorize::{Decision, Prompt, Received};
use oidc_flow::params::{self, Params};
use oidc_flow::{Client, Scope, token, userinfo};
use proptest::prelude::*;

/// Any text, U+FFFD included (the parser once read it as "the bytes were not UTF-8").
fn text(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![1 => Just('\u{FFFD}'), 20 => any::<char>()], len)
        .prop_map(|cs| cs.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// `Params::parse(encode(pairs))` gives the pairs back, in order.
    #[test]
    fn params_round_trip(pairs in prop::collection::btree_map(text(1..=12), text(1..=24), 0..=20)) {
        let encoded = params::encode(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let parsed = Params::parse(encoded.as_bytes(), 1 << 20).unwrap();
        let got: Vec<(&str, &str)> = parsed.iter().collect();
        let want: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        prop_assert_eq!(got, want);
    }

    /// An authorization request built from arbitrary values, encoded, parses back: every
    /// parameter is seen unchanged through the public API of the states it reaches.
    #[test]
    fn authorization_request_round_trip(
        redirect in prop::sample::select(vec!["https://client.example.com/cb", "https://client.example.org/cb"]),
        scope in prop::sample::subsequence(vec!["profile", "email", "address", "phone"], 0..=4),
        state in prop::option::of(text(1..=40)),
        nonce in prop::option::of(text(1..=40)),
        login_hint in prop::option::of(text(1..=40)),
        display in prop::option::of(text(1..=20)),
        ui_locales in prop::option::of(text(1..=20)),
        claims_locales in prop::option::of(text(1..=20)),
        acr_values in prop::option::of(text(1..=20)),
        max_age in prop::option::of(0u32..1_000_000),
        post in any::<bool>(),
    ) {
        let fx = &*harness::FIXTURE;
        let scope = std::iter::once("openid").chain(scope).collect::<Vec<_>>().join(" ");
        let max_age_s = max_age.map(|m| m.to_string());
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", harness::RFC_CLIENT),
            ("redirect_uri", redirect),
            ("scope", scope.as_str()),
            ("prompt", "login"),
        ];
        let optional = [
            ("state", &state),
            ("nonce", &nonce),
            ("login_hint", &login_hint),
            ("display", &display),
            ("ui_locales", &ui_locales),
            ("claims_locales", &claims_locales),
            ("acr_values", &acr_values),
            ("max_age", &max_age_s),
        ];
        for (name, value) in &optional {
            if let Some(v) = value {
                pairs.push((name, v.as_str()));
            }
        }
        let encoded = params::encode(pairs);
        let received = if post {
            Received::from_form(encoded.as_bytes())
        } else {
            Received::from_query(encoded.as_bytes())
        }
        .unwrap();
        prop_assert_eq!(received.client_id(), harness::RFC_CLIENT);
        let client = fx.clients.get(harness::RFC_CLIENT).cloned();
        let bound = received.bind_client(client).unwrap();
        prop_assert_eq!(bound.redirect_uri(), redirect);
        let validated = bound.validate(&fx.provider).unwrap();
        prop_assert_eq!(validated.nonce(), nonce.as_deref());
        let checked = validated.nonce_claimed(true).unwrap();
        prop_assert_eq!(checked.scope(), &Scope::parse(&scope).unwrap());
        let Decision::Login(login) = checked.decide(None, false, harness::START) else {
            panic!("prompt=login without a session asks for a login");
        };
        prop_assert_eq!(login.prompt(), Prompt { login: true, ..Prompt::default() });
        prop_assert_eq!(login.login_hint(), login_hint.as_deref());
        prop_assert_eq!(login.display(), display.as_deref());
        prop_assert_eq!(login.ui_locales(), ui_locales.as_deref());
        prop_assert_eq!(login.claims_locales(), claims_locales.as_deref());
        prop_assert_eq!(login.acr_values(), acr_values.as_deref());
        // The state comes back unchanged on a redirect: deny consent after logging in.
        let user = oidc_flow::Authentication {
            subject: "alice".into(),
            auth_time: harness::START,
            acr: None,
            amr: vec![],
            sid: None,
        };
        let Decision::Consent(consent) = login.logged_in(user, false) else {
            panic!("no consent given yet");
        };
        let denied = consent.answer(oidc_flow::authorize::ConsentAnswer::Deny).unwrap_err();
        prop_assert_eq!(denied.redirect.redirect_uri(), redirect);
        prop_assert_eq!(denied.redirect.param("state"), state.as_deref());
        prop_assert_eq!(denied.redirect.param("error"), Some("access_denied"));
    }

    /// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))` gives id and secret back.
    #[test]
    fn basic_credentials_round_trip(id in text(1..=40), secret in text(0..=40)) {
        let enc = |s: &str| params::encode([("", s)]).split_off(1);
        let raw = format!("{}:{}", enc(&id), enc(&secret));
        let header = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw));
        prop_assert_eq!(token::parse_basic(header.as_bytes()).unwrap(), (id.clone(), secret));
        let form = params::encode([("grant_type", "authorization_code"), ("code", "abc")]);
        let received = token::Received::parse(form.as_bytes(), Some(header.as_bytes())).unwrap();
        prop_assert_eq!(received.client_id(), id.as_str());
    }

    /// A b64token comes back from the header or the form body, and only from one of them.
    #[test]
    fn bearer_round_trip(t in "[A-Za-z0-9._~+/-]{1,200}={0,2}") {
        let header = format!("Bearer {t}");
        let body = params::encode([("access_token", t.as_str())]);
        prop_assert_eq!(userinfo::extract_bearer("r", Some(header.as_bytes()), None).unwrap(), t.clone());
        prop_assert_eq!(userinfo::extract_bearer("r", None, Some(body.as_bytes())).unwrap(), t);
        prop_assert!(userinfo::extract_bearer("r", Some(header.as_bytes()), Some(body.as_bytes())).is_err());
    }

    /// A registered redirect URI matches itself only: a prefix, a suffix, a case change, a
    /// trailing slash, an added query or a re-encoding of it gets an error page, never a redirect.
    #[test]
    fn redirect_uri_exact_match(
        registered in "https://[a-z]{1,10}\\.example\\.(com|org)(:[0-9]{2,4})?(/[a-zA-Z0-9._~-]{0,8}){0,3}(\\?[a-z]{1,5}=[a-z0-9]{1,5})?",
        mutation in 0usize..7,
        at in any::<prop::sample::Index>(),
        extra in "[a-zA-Z0-9/?&=#%._~-]{1,4}",
    ) {
        let client = registered_client(&registered);
        let chars: Vec<char> = registered.chars().collect();
        let i = at.index(chars.len());
        let mutated: String = match mutation {
            0 => chars[..i].iter().collect(),
            1 => format!("{registered}{extra}"),
            2 => {
                let mut c = chars.clone();
                c[i] = if c[i].is_ascii_lowercase() { c[i].to_ascii_uppercase() } else { c[i].to_ascii_lowercase() };
                c.into_iter().collect()
            }
            3 => format!("{registered}/"),
            4 => if registered.contains('?') { format!("{registered}&x=1") } else { format!("{registered}?x=1") },
            5 => format!("{}%{:02X}{}", chars[..i].iter().collect::<String>(), u32::from(chars[i]), chars[i + 1..].iter().collect::<String>()),
            _ => format!("{extra}{registered}"),
        };
        // The exact string binds; the mutation binds only if it happens to be the same string.
        harness::check_redirect(&client, Some(&registered), "openid");
        harness::check_redirect(&client, Some(&mutated), "openid");
        let query = params::encode([
            ("response_type", "code"),
            ("client_id", "fuzz-rp"),
            ("scope", "openid"),
            ("redirect_uri", mutated.as_str()),
        ]);
        let bound = Received::from_query(query.as_bytes()).unwrap().bind_client(Some(client));
        prop_assert_eq!(bound.is_ok(), mutated == registered);
    }

    /// Arbitrary strings as redirect URIs: registration validation and exact matching.
    #[test]
    fn redirect_uri_arbitrary(registered in text(1..=60), requested in text(0..=60)) {
        let Ok(client) = fixture_client(&registered) else {
            return Ok(());
        };
        harness::check_redirect(&client, Some(&requested), "openid");
        harness::check_redirect(&client, Some(&registered), "openid");
        harness::check_redirect(&client, None, "profile");
    }
}

fn fixture_client(uri: &str) -> Result<Client, oidc_flow::ClientError> {
    serde_json::from_value::<Client>(serde_json::json!({
        "client_id": "fuzz-rp",
        "client_secret": "fuzz-secret",
        "redirect_uris": [uri],
        "scope": "openid profile",
    }))
    .unwrap()
    .validate()
}

fn registered_client(uri: &str) -> Client {
    fixture_client(uri).unwrap()
}
