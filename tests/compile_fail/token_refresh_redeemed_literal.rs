// RefreshRedeemed, the only state that issues tokens for a refresh token, cannot be forged.
use oidc_flow::{Client, RefreshTokenRecord, Scope, token};

fn f(client: Client, record: RefreshTokenRecord, scope: Scope) -> token::RefreshRedeemed {
    token::RefreshRedeemed {
        client,
        record,
        scope,
    }
}

fn main() {}
