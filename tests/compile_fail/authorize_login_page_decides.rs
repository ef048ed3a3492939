// The page view of a parked request shows it but cannot decide it: only the parked record,
// taken from the store and resumed, can go on.
use oidc_flow::{Authentication, authorize};

fn f(page: authorize::LoginPage, user: Authentication) {
    let _ = page.logged_in(user, true);
}

fn main() {}
