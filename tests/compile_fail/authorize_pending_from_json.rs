// A parked request cannot be made from data: only `PendingAuthorization::unseal` makes one,
// from a value the provider sealed. Neither serde nor a literal builds it.
use oidc_flow::authorize::PendingAuthorization;

fn from_json(text: &str) -> PendingAuthorization {
    serde_json::from_str(text).unwrap()
}

fn main() {}
