// A parked request resumes once: it is consumed by `resume` and cannot be cloned first.
use oidc_flow::authorize::{MarkClaim, PendingAuthorization};
use oidc_flow::Client;

fn f(pending: PendingAuthorization, client: Client) {
    let copy = pending.clone();
    let _first = pending.resume(Some(client.clone()), MarkClaim::Fresh);
    let _second = copy.resume(Some(client), MarkClaim::Fresh);
}

fn main() {}
