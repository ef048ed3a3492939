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
    // The login and consent pages read these fields of the posted form.
    if let Ok(params) = Params::parse(body, 64 * 1024) {
        for field in ["handle", "csrf", "username", "password", "decision"] {
            let _ = params.get(field);
        }
    }
}
