//! Benchmarks of the core: parsing an authorization request, the whole code flow in-core
//! (one ID token signed at the token endpoint), and the signature alone for comparison.
//!
//! `cargo bench --bench core -- --warm-up-time 1 --measurement-time 5`
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::hint::black_box;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use criterion::{Criterion, criterion_group, criterion_main};
use oidc_flow::authorize::{self, Decision};
use oidc_flow::keys::{Algorithm, KeySet, SigningKey};
use oidc_flow::token::{self, Grant};
use oidc_flow::{Authentication, Client, Effect, JsonResponse, Provider, Taken, UserInfo};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use time::OffsetDateTime;

const NOW: OffsetDateTime = time::macros::datetime!(2026-11-27 12:00:00 UTC);
const ALGS: [(Algorithm, &str); 3] = [
    (Algorithm::RS256, "rsa2048.pem"),
    (Algorithm::ES256, "p256.pem"),
    (Algorithm::EdDSA, "ed25519.pem"),
];
const REDIRECT_ENC: &str = "https%3A%2F%2Frp.example.org%2Fcb";
/// The PKCE verifier of the flow and its S256 challenge (RFC 7636 appendix B).
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn key(alg: Algorithm, file: &str) -> SigningKey {
    let path = format!("{}/tests/keys/{file}", env!("CARGO_MANIFEST_DIR"));
    SigningKey::from_pem(
        &std::fs::read(path).unwrap(),
        alg,
        Some(&format!("key-{alg}")),
    )
    .unwrap()
}

fn secret(client_id: &str) -> String {
    format!("secret-of-{client_id}-0123456789abcdef")
}

/// A confidential client (client_secret_basic) whose ID tokens use `alg`.
fn client(alg: Algorithm) -> Client {
    let id = format!("rp-{alg}");
    let json = serde_json::json!({
        "client_id": id,
        "client_secret": secret(&id),
        "redirect_uris": ["https://rp.example.org/cb"],
        "grant_types": ["authorization_code"],
        "scope": "openid profile email",
        "id_token_signed_response_alg": alg.as_str(),
    });
    serde_json::from_value::<Client>(json)
        .unwrap()
        .validate()
        .unwrap()
}

/// A realistic authorization request of 12 parameters.
fn query(client_id: &str) -> String {
    format!(
        "response_type=code&client_id={client_id}&redirect_uri={REDIRECT_ENC}\
         &scope=openid+profile+email&state=af0ifjsldkj-Qx7d3Kv9&nonce=n-0S6_WzA2Mj-9f3kQ1\
         &code_challenge={CHALLENGE}&code_challenge_method=S256&display=page&ui_locales=en-GB+en\
         &login_hint=alice%40example.com&max_age=3600"
    )
}

fn bench_parse(c: &mut Criterion) {
    let q = query("rp-ES256");
    let mut group = c.benchmark_group("authorize");
    group.bench_function("from_query", |b| {
        b.iter(|| authorize::Received::from_query(black_box(q.as_bytes())).unwrap());
    });
    group.finish();
}

/// The authorization endpoint and then the token endpoint, as a driver runs them; returns
/// the token response.
fn code_flow(
    provider: &Provider,
    client: &Client,
    query: &[u8],
    basic: &[u8],
    rng: &mut ChaCha20Rng,
) -> JsonResponse {
    let received = authorize::Received::from_query(query).unwrap();
    let bound = received.bind_client(Some(client.clone())).unwrap();
    let validated = bound.validate(provider).unwrap();
    let checked = validated.nonce_claimed(true).unwrap();
    let session = Authentication {
        subject: "alice".to_owned(),
        auth_time: NOW - time::Duration::minutes(5),
        acr: None,
        amr: vec!["pwd".to_owned()],
        sid: None,
    };
    let Decision::Authorized(authorized) = checked.decide(Some(session), true, NOW) else {
        panic!("a logged-in, consenting user is authorized");
    };
    let done = authorized
        .issue(provider, &UserInfo::default(), rng, NOW)
        .unwrap();
    let code = done.response.param("code").unwrap();
    let form = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={REDIRECT_ENC}&code_verifier={VERIFIER}"
    );
    let Some(Effect::StoreCode(record)) = done.effects.into_iter().next() else {
        panic!("the code is stored first");
    };

    let received = token::Received::parse(form.as_bytes(), Some(basic)).unwrap();
    let token::Authenticated::Client(authenticated) = received
        .authenticate(Some(client.clone()), provider, NOW)
        .unwrap()
    else {
        panic!("client_secret_basic needs no assertion claim");
    };
    let Grant::AuthorizationCode(exchange) = authenticated.grant().unwrap() else {
        panic!("an authorization_code grant");
    };
    let redeemed = exchange.redeem(Taken::Fresh(record), NOW).unwrap();
    redeemed.issue(provider, rng, NOW).unwrap().response
}

fn bench_flow_and_sign(c: &mut Criterion) {
    let mut keys = KeySet::new();
    let mut signing_keys = Vec::new();
    for (alg, file) in ALGS {
        keys.add(key(alg, file)).unwrap();
        signing_keys.push(key(alg, file));
    }
    let provider = Provider::builder("https://op.example.com", keys)
        .build()
        .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(2026);

    let mut flow = c.benchmark_group("code_flow");
    for (alg, _) in ALGS {
        let client = client(alg);
        let query = query(&client.client_id);
        let basic = format!(
            "Basic {}",
            STANDARD.encode(format!(
                "{}:{}",
                client.client_id,
                secret(&client.client_id)
            ))
        );
        // Sanity: the flow ends with an ID token signed with `alg`.
        let response = code_flow(
            &provider,
            &client,
            query.as_bytes(),
            basic.as_bytes(),
            &mut rng,
        );
        let id_token = response.json()["id_token"].as_str().unwrap().to_owned();
        assert!(id_token.starts_with(&URL_SAFE_NO_PAD.encode(format!("{{\"alg\":\"{alg}\""))));
        flow.bench_function(alg.as_str(), |b| {
            b.iter(|| {
                code_flow(
                    &provider,
                    &client,
                    black_box(query.as_bytes()),
                    basic.as_bytes(),
                    &mut rng,
                )
            });
        });
    }
    flow.finish();

    let mut sign = c.benchmark_group("sign");
    for key in &signing_keys {
        let alg = key.algorithm();
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"key-{alg}"}}"#);
        let payload = r#"{"iss":"https://op.example.com","sub":"alice","aud":"rp-ES256","exp":1795781100,"iat":1795780800,"auth_time":1795780500,"nonce":"n-0S6_WzA2Mj-9f3kQ1","amr":["pwd"]}"#;
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        assert!((250..=350).contains(&input.len()), "{}", input.len());
        sign.bench_function(alg.as_str(), |b| {
            b.iter(|| key.sign(black_box(input.as_bytes())).unwrap());
        });
    }
    sign.finish();
}

criterion_group!(benches, bench_parse, bench_flow_and_sign);
criterion_main!(benches);
