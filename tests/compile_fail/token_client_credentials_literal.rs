// A client credentials grant cannot be forged: only an authenticated client's form makes one.
use oidc_flow::{Client, Scope, token};

fn f(client: Client, scope: Scope) -> token::ClientCredentials {
    token::ClientCredentials { client, scope }
}

fn main() {}
