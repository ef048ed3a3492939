//! The adapter-level fuzz target `hyper_forms`: what the hyper adapter parses itself rather
//! than through the core — the `Cookie` headers (session and CSRF cookies) — plus the login
//! and consent form fields, which it reads with the core's `Params`.
//!
//! Included with `#[path]` by `fuzz_targets/hyper_forms.rs` and by
//! `adapters/hyper/tests/fuzz_replay.rs`, which replays the kept inputs on stable.
#![allow(dead_code)]

use hyper::header::{COOKIE, HeaderMap, HeaderValue};
use oidc_flow::params::Params;
use oidc_flow_hyper::Cookies;

/// Cookie names the adapter reads.
const NAMES: [&str; 2] = ["oidc_flow_session", "oidc_flow_csrf"];

/// Input: `Cookie` header lines, a blank line, then a login or consent form body.
pub fn hyper_forms(data: &[u8]) {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (
            data.get(..at).unwrap_or_default(),
            data.get(at + 2..).unwrap_or_default(),
        ),
        None => (data, &[][..]),
    };
    let mut headers = HeaderMap::new();
    for line in head.split(|&b| b == b'\n').take(16) {
        // hyper refuses header values it cannot carry before they reach the adapter.
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(COOKIE, v);
        }
    }
    let cookies = Cookies::from(&headers);
    for name in NAMES {
        if let Some(value) = cookies.get(name) {
            // A value comes from the headers, never from nowhere.
            assert!(
                headers.get_all(COOKIE).iter().any(|h| h
                    .as_bytes()
                    .windows(value.len().max(1))
                    .any(|w| value.is_empty() || w == value.as_bytes())),
                "cookie {name} has a value that is in no Cookie header"
            );
        }
    }
    // The login and consent pages read these fields of the posted form, with `Params`.
    form_fields(body);
}

/// Fields the login and consent pages read.
const FIELDS: [&str; 5] = ["handle", "csrf", "username", "password", "decision"];

/// What `Params` gives for each field the pages read is what the WHATWG urlencoded parser
/// of the `url` crate decodes from the body: the value of the one occurrence with a
/// non-empty value (an empty value is an absent one, RFC 6749 §3.1), none if there is none;
/// a body with a field twice is refused, and a refused body has a reason.
fn form_fields(body: &[u8]) {
    let limit = 64 * 1024;
    // Every (name, value) with a non-empty value, decoded independently.
    let theirs: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let occurrences = |field: &str| -> Vec<&str> {
        theirs
            .iter()
            .filter(|(k, _)| k == field)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    match Params::parse(body, limit) {
        Ok(params) => {
            for field in FIELDS {
                let found = occurrences(field);
                assert!(
                    found.len() <= 1,
                    "{field} sent {} times, yet accepted",
                    found.len()
                );
                assert_eq!(
                    params.get(field),
                    found.first().copied(),
                    "Params gives {field} another value than the body holds"
                );
            }
            // Nothing is invented either: every parameter kept is in the body, once.
            for (name, value) in params.iter() {
                assert_eq!(
                    occurrences(name),
                    [value],
                    "Params holds {name}={value:?}, not what the body says"
                );
            }
        }
        Err(_) => {
            let mut names: Vec<&str> = theirs.iter().map(|(k, _)| k.as_str()).collect();
            names.sort_unstable();
            let before = names.len();
            names.dedup();
            let repeated = names.len() < before;
            // `url` decodes bytes that are not UTF-8 to U+FFFD, where `Params` refuses them.
            let replaced = std::str::from_utf8(body).is_err()
                || theirs
                    .iter()
                    .any(|(k, v)| k.contains('\u{FFFD}') || v.contains('\u{FFFD}'));
            let too_many = names.len() > oidc_flow::params::MAX_PARAMETERS
                || body.iter().filter(|&&b| b == b'&').count()
                    >= oidc_flow::params::MAX_PARAMETERS * 4;
            assert!(
                body.len() > limit || repeated || replaced || too_many,
                "a form refused for no reason: {:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
