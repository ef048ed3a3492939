// Parking consumes the waiting request: one request cannot be parked (and so resumed) twice.
use oidc_flow::authorize;
use oidc_flow::parking::ParkingSecret;

fn f(
    awaiting: authorize::AwaitingLogin,
    secret: &ParkingSecret,
    rng: &mut impl rand_core::CryptoRng,
    now: time::OffsetDateTime,
) {
    let (_first, _page) = awaiting.park(secret, "browser", rng, now);
    let (_second, _) = awaiting.park(secret, "browser", rng, now);
}

fn main() {}
