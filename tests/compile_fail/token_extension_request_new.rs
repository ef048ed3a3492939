// An extension request comes only from an authenticated client's form whose grant the
// provider declared and the client registered (ClientAuthenticated::grant).
use oidc_flow::Client;
use oidc_flow::extension::ExtensionRequest;

fn request(client: Client) -> ExtensionRequest {
    ExtensionRequest::new(client, "password".to_owned(), Default::default(), None)
}

fn main() {}
