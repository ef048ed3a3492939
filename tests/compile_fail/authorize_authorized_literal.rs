// Authorized, the only state that can issue, cannot be forged: its fields are private.
use oidc_flow::{Authentication, Client, authorize};

fn f(client: Client, user: Authentication) -> authorize::Authorized {
    authorize::Authorized {
        client,
        user,
        remember_consent: false,
    }
}

fn main() {}
