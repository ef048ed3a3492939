// A granted extension request cannot be forged around the core's check of the decision
// (scope within the registration, no end-user scopes without an end-user).
use oidc_flow::Client;
use oidc_flow::extension::{ExtensionGranted, GrantDecision};

fn forged(client: Client, decision: GrantDecision) -> ExtensionGranted {
    ExtensionGranted { client, decision, audience: None }
}

fn main() {}
