// Parking consumes the waiting request: one request cannot be parked (and so resumed) twice.
use oidc_flow::authorize;

fn f(awaiting: authorize::AwaitingLogin) {
    let (_first, _page) = awaiting.park();
    let (_second, _) = awaiting.park();
}

fn main() {}
