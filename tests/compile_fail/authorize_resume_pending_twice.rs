// A parked request resumes once: it is consumed by `resume` and cannot be cloned first.
use oidc_flow::{Client, authorize};

fn f(pending: authorize::PendingAuthorization, client: Client) {
    let copy = pending.clone();
    let _first = pending.resume(Some(client.clone()));
    let _second = copy.resume(Some(client));
}

fn main() {}
