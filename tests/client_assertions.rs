//! Client authentication by JWT (RFC 7523 §2.2, OIDC Core §9): `client_secret_jwt` and
//! `private_key_jwt`, with the assertions made by an independent library (jsonwebtoken's
//! `encode`), at the token, introspection and revocation endpoints.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{Harness, ISSUER, PresentedForm, TokenForm, secret_of};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use oidc_flow::response::JsonResponse;
use serde_json::{Value, json};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The DER inside a fixture PEM file (jsonwebtoken reads PEM only with a feature the core
/// does not enable).
fn key_der(file: &str) -> Vec<u8> {
    let text = std::fs::read(format!(
        "{}/tests/keys/{file}.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    pem::parse(text).unwrap().into_contents()
}

/// The standard claims of an assertion by `client` for `aud`, valid for `valid_for` seconds.
fn claims(h: &Harness, client: &str, aud: &str, valid_for: i64, jti: &str) -> Value {
    let now = h.now.unix_timestamp();
    json!({"iss": client, "sub": client, "aud": aud, "iat": now, "exp": now + valid_for, "jti": jti})
}

/// An assertion signed by jsonwebtoken.
fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, key).unwrap()
}

fn hs256(client: &str, claims: &Value) -> String {
    let key = EncodingKey::from_secret(secret_of(client).as_bytes()).unwrap();
    sign(Algorithm::HS256, None, &key, claims)
}

fn es256(kid: &str, claims: &Value) -> String {
    let key = EncodingKey::from_ec_der(&key_der("p256"));
    sign(Algorithm::ES256, Some(kid), &key, claims)
}

fn rs256(kid: &str, claims: &Value) -> String {
    let key = EncodingKey::from_rsa_der(&key_der("rsa2048-pkcs1"));
    sign(Algorithm::RS256, Some(kid), &key, claims)
}

/// A client credentials request authenticated by `assertion` (plus `extra` form fields).
fn token_with(h: &mut Harness, assertion: &str, extra: TokenForm<'_>) -> JsonResponse {
    let form = TokenForm {
        grant_type: Some("client_credentials"),
        client_assertion_type: Some(JWT_BEARER),
        client_assertion: Some(assertion),
        ..extra
    };
    h.token(&form.encode(), None)
}

fn error_of(r: &JsonResponse) -> (u16, String) {
    (
        r.status,
        r.json()["error"].as_str().unwrap_or_default().to_owned(),
    )
}

fn invalid_client() -> (u16, String) {
    (401, "invalid_client".to_owned())
}

#[test]
fn client_secret_jwt_and_private_key_jwt_authenticate() {
    let mut h = Harness::default_provider();
    let token_endpoint = format!("{ISSUER}/token");
    let cases = [
        hs256(
            "assert-secret",
            &claims(&h, "assert-secret", &token_endpoint, 60, "j1"),
        ),
        es256(
            "client-es256",
            &claims(&h, "assert-key", &token_endpoint, 60, "j2"),
        ),
        rs256("client-rs256", &claims(&h, "assert-key", ISSUER, 300, "j3")),
    ];
    for assertion in cases {
        let r = token_with(&mut h, &assertion, TokenForm::default());
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["scope"], "api:read api:write");
    }
    // client_id in the form, when sent, must name the same client.
    let a = hs256(
        "assert-secret",
        &claims(&h, "assert-secret", ISSUER, 60, "j4"),
    );
    assert_eq!(
        token_with(
            &mut h,
            &a,
            TokenForm {
                client_id: Some("assert-secret"),
                ..TokenForm::default()
            }
        )
        .status,
        200
    );
    let a = hs256(
        "assert-secret",
        &claims(&h, "assert-secret", ISSUER, 60, "j5"),
    );
    assert_eq!(
        error_of(&token_with(
            &mut h,
            &a,
            TokenForm {
                client_id: Some("service"),
                ..TokenForm::default()
            }
        )),
        invalid_client()
    );
}

#[test]
fn an_assertion_is_single_use() {
    let mut h = Harness::default_provider();
    let a = es256(
        "client-es256",
        &claims(&h, "assert-key", ISSUER, 60, "once"),
    );
    assert_eq!(token_with(&mut h, &a, TokenForm::default()).status, 200);
    let again = token_with(&mut h, &a, TokenForm::default());
    assert_eq!(error_of(&again), invalid_client());
    assert!(
        again.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("used before")
    );
    // Another client may use the same jti: it is single-use per client.
    let b = hs256(
        "assert-secret",
        &claims(&h, "assert-secret", ISSUER, 60, "once"),
    );
    assert_eq!(token_with(&mut h, &b, TokenForm::default()).status, 200);
}

#[test]
fn claims_and_times_are_checked_against_the_injected_clock() {
    let mut h = Harness::default_provider();
    let now = h.now.unix_timestamp();
    let refused = [
        (
            "aud of another server",
            claims(&h, "assert-key", "https://other.example.com", 60, "a"),
        ),
        (
            "expired",
            json!({"iss": "assert-key", "sub": "assert-key", "aud": ISSUER, "exp": now - 1, "jti": "b"}),
        ),
        (
            "valid for an hour",
            claims(&h, "assert-key", ISSUER, 3600, "c"),
        ),
        (
            "issued in the future",
            json!({"iss": "assert-key", "sub": "assert-key", "aud": ISSUER, "iat": now + 600, "exp": now + 700, "jti": "d"}),
        ),
        (
            "no jti",
            json!({"iss": "assert-key", "sub": "assert-key", "aud": ISSUER, "exp": now + 60}),
        ),
        (
            "no aud",
            json!({"iss": "assert-key", "sub": "assert-key", "exp": now + 60, "jti": "e"}),
        ),
        (
            "iss is not sub",
            json!({"iss": "service", "sub": "assert-key", "aud": ISSUER, "exp": now + 60, "jti": "f"}),
        ),
    ];
    for (why, c) in refused {
        let r = token_with(&mut h, &es256("client-es256", &c), TokenForm::default());
        assert_eq!(error_of(&r), invalid_client(), "{why}: {}", r.body);
        assert!(r.header("www-authenticate").is_some(), "{why}");
    }
    assert!(h.access_tokens.is_empty());
}

#[test]
fn keys_and_methods_must_be_the_registered_ones() {
    let mut h = Harness::default_provider();
    let now = h.now.unix_timestamp();
    let c = |jti: &str| json!({"iss": "assert-key", "sub": "assert-key", "aud": ISSUER, "exp": now + 60, "jti": jti});
    // Signed by a key the client did not register, under its kid.
    let p384 = EncodingKey::from_ec_der(&key_der("p384"));
    let forged = sign(Algorithm::ES384, Some("client-es256"), &p384, &c("k1"));
    assert_eq!(
        error_of(&token_with(&mut h, &forged, TokenForm::default())),
        invalid_client()
    );
    let other = EncodingKey::from_ec_der(&key_der("p256"));
    let unknown_kid = sign(Algorithm::ES256, Some("nope"), &other, &c("k2"));
    assert_eq!(
        error_of(&token_with(&mut h, &unknown_kid, TokenForm::default())),
        invalid_client()
    );
    // HS256 keyed with anything is not private_key_jwt.
    let hs = sign(
        Algorithm::HS256,
        Some("client-es256"),
        &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef").unwrap(),
        &c("k3"),
    );
    assert_eq!(
        error_of(&token_with(&mut h, &hs, TokenForm::default())),
        invalid_client()
    );
    // A client_secret_jwt client cannot use Basic, nor a Basic client an assertion.
    let r = h.token(
        &TokenForm::grant("client_credentials").encode(),
        Some(&Harness::basic("assert-secret")),
    );
    assert_eq!(error_of(&r), invalid_client());
    let a = hs256("service", &claims(&h, "service", ISSUER, 60, "k4"));
    assert_eq!(
        error_of(&token_with(&mut h, &a, TokenForm::default())),
        invalid_client()
    );
    // The wrong assertion type; an assertion with a secret too; a type alone.
    let a = hs256(
        "assert-secret",
        &claims(&h, "assert-secret", ISSUER, 60, "k5"),
    );
    let form = TokenForm {
        client_assertion_type: Some("urn:other"),
        client_assertion: Some(&a),
        ..TokenForm::grant("client_credentials")
    }
    .encode();
    assert_eq!(error_of(&h.token(&form, None)), invalid_client());
    let with_secret = TokenForm {
        client_secret: Some("x"),
        ..TokenForm::default()
    };
    let r = token_with(&mut h, &a, with_secret);
    assert_eq!(error_of(&r), (400, "invalid_request".to_owned()));
    let form = TokenForm {
        client_assertion_type: Some(JWT_BEARER),
        ..TokenForm::grant("client_credentials")
    }
    .encode();
    assert_eq!(error_of(&h.token(&form, None)).0, 400);
    assert!(h.access_tokens.is_empty());
}

#[test]
fn introspection_and_revocation_take_assertions_too() {
    let mut h = Harness::default_provider();
    let a = rs256("client-rs256", &claims(&h, "assert-key", ISSUER, 60, "t1"));
    let token = token_with(&mut h, &a, TokenForm::default()).json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let intro = es256(
        "client-es256",
        &claims(&h, "assert-key", &format!("{ISSUER}/introspect"), 60, "t2"),
    );
    let form = PresentedForm {
        client_assertion_type: Some(JWT_BEARER),
        client_assertion: Some(&intro),
        ..PresentedForm::token(&token)
    }
    .encode();
    let r = h.introspect(&form, None);
    assert_eq!(r.json()["active"], true, "{}", r.body);
    // The same assertion again: refused, even at another endpoint's flow.
    let r = h.introspect(&form, None);
    assert_eq!(error_of(&r), invalid_client());
}

#[test]
fn registration_rules() {
    use oidc_flow::{AuthMethod, ClientError};
    let [secret_client, key_client] = common::assertion_clients();
    let mut short = secret_client.clone();
    short.client_secret = Some("too-short".into());
    assert!(matches!(
        short.validate(),
        Err(ClientError::BadAssertionKeys(_))
    ));
    let mut hashed = secret_client;
    hashed.client_secret_sha256 = Some(oidc_flow::SecretHash::of(&secret_of("x")));
    hashed.client_secret = None;
    assert!(matches!(
        hashed.validate(),
        Err(ClientError::BadAssertionKeys(_))
    ));
    let mut no_keys = key_client.clone();
    no_keys.jwks = None;
    assert!(matches!(
        no_keys.validate(),
        Err(ClientError::BadAssertionKeys(_))
    ));
    let mut private = key_client.clone();
    let path = format!("{}/tests/keys/p256.jwk.json", env!("CARGO_MANIFEST_DIR"));
    let full: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    private.jwks = Some(json!({"keys": [full]}));
    assert!(matches!(
        private.validate(),
        Err(ClientError::BadAssertionKeys(_))
    ));
    let mut with_secret = key_client;
    with_secret.client_secret = Some(secret_of("y"));
    assert!(with_secret.validate().is_err());
    assert_eq!(AuthMethod::PrivateKeyJwt.as_str(), "private_key_jwt");
}

/// An ES512 assertion (which jsonwebtoken cannot make or verify) signed by RustCrypto's
/// `p521` with the fixture key's scalar: the core verifies it with its own JWS code.
fn es512(kid: Option<&str>, claims: &Value) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use p521::ecdsa::signature::Signer as _;
    let path = format!("{}/tests/keys/p521.jwk.json", env!("CARGO_MANIFEST_DIR"));
    let jwk: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let d = B64.decode(jwk["d"].as_str().unwrap()).unwrap();
    let key = p521::ecdsa::SigningKey::from_slice(&d).unwrap();
    let mut header = json!({"alg": "ES512", "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = kid.into();
    }
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let signature: p521::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(signature.to_bytes()))
}

#[test]
fn es512_assertions_verify_through_the_cores_own_jws_code() {
    let mut h = Harness::default_provider();
    let mut client = h.clients["assert-key"].clone();
    client.client_id = "assert-p521".to_owned();
    client.jwks = Some(json!({"keys": [common::public_jwk("p521", "client-es512", "ES512")]}));
    let client = client.validate().unwrap();
    h.clients.insert(client.client_id.clone(), client);
    let token_endpoint = format!("{ISSUER}/token");
    let ok = es512(
        Some("client-es512"),
        &claims(&h, "assert-p521", &token_endpoint, 60, "p521-1"),
    );
    let r = token_with(&mut h, &ok, TokenForm::default());
    assert_eq!(r.status, 200, "{}", r.body);
    // Single use, as every assertion.
    assert_eq!(
        error_of(&token_with(&mut h, &ok, TokenForm::default())),
        invalid_client()
    );
    // The same checks as for the others: aud, iss/sub, lifetime, signature, kid.
    let bad_aud = es512(
        Some("client-es512"),
        &claims(&h, "assert-p521", "https://elsewhere.example", 60, "p521-2"),
    );
    let other_client = es512(
        Some("client-es512"),
        &claims(&h, "assert-key", &token_endpoint, 60, "p521-3"),
    );
    let too_long = es512(
        Some("client-es512"),
        &claims(&h, "assert-p521", &token_endpoint, 3600, "p521-4"),
    );
    let unknown_kid = es512(
        Some("nope"),
        &claims(&h, "assert-p521", &token_endpoint, 60, "p521-5"),
    );
    let mut tampered = es512(
        Some("client-es512"),
        &claims(&h, "assert-p521", &token_endpoint, 60, "p521-6"),
    );
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    for (name, assertion) in [
        ("aud", bad_aud),
        ("another client's", other_client),
        ("ten minutes", too_long),
        ("kid", unknown_kid),
        ("signature", tampered),
    ] {
        let r = token_with(&mut h, &assertion, TokenForm::default());
        assert_eq!(error_of(&r), invalid_client(), "{name}: {}", r.body);
    }
    // A client_secret_jwt client cannot use ES512.
    let secret_client = es512(
        None,
        &claims(&h, "assert-secret", &token_endpoint, 60, "p521-7"),
    );
    let r = token_with(&mut h, &secret_client, TokenForm::default());
    assert_eq!(error_of(&r), invalid_client(), "{}", r.body);
}

#[test]
fn keys_published_at_a_jwks_uri_verify_once_fetched() {
    let mut h = Harness::default_provider();
    let uri = "https://client.example/jwks.json";
    let mut client = h.clients["assert-key"].clone();
    client.client_id = "assert-uri".to_owned();
    let keys = client.jwks.take();
    client.jwks_uri = Some(uri.to_owned());
    let client = client.validate().unwrap();
    h.clients.insert(client.client_id.clone(), client);
    let token_endpoint = format!("{ISSUER}/token");
    let assertion = |h: &Harness, jti: &str| {
        es256(
            "client-es256",
            &claims(h, "assert-uri", &token_endpoint, 60, jti),
        )
    };
    // Nothing published (the fetch failed): invalid_client, said so.
    let a = assertion(&h, "u-1");
    let r = token_with(&mut h, &a, TokenForm::default());
    assert_eq!(error_of(&r), invalid_client());
    assert!(r.body.contains("jwks_uri"), "{}", r.body);
    // Published: the assertion verifies against the fetched document.
    h.published_jwks.insert(uri.to_owned(), keys.unwrap());
    let a = assertion(&h, "u-2");
    let r = token_with(&mut h, &a, TokenForm::default());
    assert_eq!(r.status, 200, "{}", r.body);
    // At introspection too.
    let a = assertion(&h, "u-3");
    let form = PresentedForm {
        client_assertion_type: Some(JWT_BEARER),
        client_assertion: Some(&a),
        ..PresentedForm::token("x")
    }
    .encode();
    let r = h.introspect(&form, None);
    assert_eq!(r.status, 200, "{}", r.body);
    // A document that is not a JWKS is a failed fetch.
    h.published_jwks.insert(uri.to_owned(), json!({"nope": 1}));
    let a = assertion(&h, "u-4");
    let r = token_with(&mut h, &a, TokenForm::default());
    assert_eq!(error_of(&r), invalid_client());
}

#[test]
fn jwks_uri_registration_rules() {
    let h = Harness::default_provider();
    let base = h.clients["assert-key"].clone();
    for (jwks, uri, ok) in [
        (true, Some("https://client.example/jwks"), false),
        (false, Some("https://client.example/jwks"), true),
        (false, Some("http://127.0.0.1:8080/jwks"), true),
        (false, Some("http://client.example/jwks"), false),
        (false, Some("https://client.example/jwks#k"), false),
        (false, None, false),
    ] {
        let mut c = base.clone();
        if !jwks {
            c.jwks = None;
        }
        c.jwks_uri = uri.map(str::to_owned);
        assert_eq!(c.validate().is_ok(), ok, "jwks {jwks}, uri {uri:?}");
    }
}
