// CodeRedeemed, the only state that issues tokens for a code, cannot be forged.
use oidc_flow::{Client, CodeRecord, token};

fn f(client: Client, record: CodeRecord) -> token::CodeRedeemed {
    token::CodeRedeemed { client, record }
}

fn main() {}
