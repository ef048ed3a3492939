//! The harness sees what Chromium says about a Content-Security-Policy: a page whose
//! `form-action 'self'` blocks the redirect of its form to another origin (the bug of issue 9)
//! is reported, and the same page naming that origin is not.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use oidc_flow_browser_harness::{CallbackServer, Page, Reply, Suite, WAIT, ensure};

/// Polls the page's console until it holds a CSP message or `limit` passes; returns the CSP
/// messages seen (empty if none came).
async fn csp_messages_within(page: &mut Page, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    loop {
        let csp = page.csp_messages().await.unwrap();
        if !csp.is_empty() || Instant::now() > deadline {
            return csp;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn form_page(csp: &str) -> Reply {
    Reply {
        status: 200,
        headers: vec![("content-security-policy".into(), csp.into())],
        body: "<!DOCTYPE html><html><head><title>Form</title></head><body>\
               <form method=\"post\" action=\"/go\"><input name=\"x\" value=\"1\">\
               <button type=\"submit\">Send</button></form></body></html>"
            .into(),
    }
}

#[tokio::test]
async fn csp_violations_are_reported() {
    let Some(mut suite) = Suite::start("harness").await.unwrap() else {
        return;
    };
    let site = CallbackServer::start().await.unwrap();
    let other = CallbackServer::start().await.unwrap();
    // /go answers 303 to another origin, as /consent does to a client's redirect_uri.
    site.route(
        "/go",
        Reply {
            status: 303,
            headers: vec![("location".into(), other.url("/landed"))],
            body: String::new(),
        },
    );
    site.route(
        "/strict",
        form_page("default-src 'none'; form-action 'self'"),
    );
    site.route(
        "/open",
        form_page(&format!(
            "default-src 'none'; form-action 'self' {}",
            other.origin()
        )),
    );

    // Blocked: the harness reads Chromium's console message, and a flow fails because of it.
    let mut page = suite.page("strict").await.unwrap();
    page.goto(&site.url("/strict")).await.unwrap();
    page.click_button("Send").await.unwrap();
    let csp = csp_messages_within(&mut page, WAIT).await;
    assert!(
        csp.iter().any(|m| m.contains("form-action")),
        "no CSP message about form-action: {csp:?}"
    );
    assert!(
        other.requests().is_empty(),
        "the blocked redirect reached the other origin"
    );
    page.close().await;

    let (site_url, other_ref) = (site.url("/strict"), &other);
    suite
        .flow("strict-flow", async |page| {
            page.goto(&site_url).await?;
            page.click_button("Send").await?;
            // Chromium logs the violation a moment after the click, sooner or later with
            // the machine's load: wait until it has (not a fixed pause, which a slow machine
            // overruns), so the flow's own check after this body is sure to find it. The body
            // itself passes: the failure the suite records must come from that check.
            let csp = csp_messages_within(page, WAIT).await;
            ensure!(
                !csp.is_empty(),
                "Chromium logged no CSP message in {WAIT:?}"
            );
            ensure!(other_ref.requests().is_empty(), "the redirect went through");
            Ok(())
        })
        .await;
    assert_eq!(suite.failures().len(), 1, "the flow did not fail");
    assert!(
        suite.failures()[0].contains("Content-Security-Policy"),
        "{:?}",
        suite.failures()
    );

    // Allowed: the form-action names the other origin, so the redirect chain goes through.
    let open_url = site.url("/open");
    let mut suite2 = Suite::start("harness").await.unwrap().unwrap();
    suite2
        .flow("open-flow", async |page| {
            page.goto(&open_url).await?;
            page.click_button("Send").await?;
            let landed = other_ref.wait_for_path("/landed").await?;
            ensure!(landed.method == "GET", "landed with {}", landed.method);
            page.wait_for_url(|u| u.path() == "/landed").await?;
            Ok(())
        })
        .await;
    suite2.finish();
    drop(suite);
}
