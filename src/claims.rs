//! End-user claims (OIDC Core §5.1) and the scope → claims rule of §5.4.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::provider::Provider;
use crate::scope::Scope;

/// A postal address (OIDC Core §5.1.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// The full address, formatted for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
    /// Street address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street_address: Option<String>,
    /// City or locality.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// State, province or region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// Country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// What the provider knows of an end-user: the standard claims of OIDC Core §5.1 and custom ones.
///
/// The subject is not here: it comes from the authentication, so a claims source cannot
/// make a token speak for someone else.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // Each field is the standard claim of the same name (OIDC Core section 5.1).
pub struct UserInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthdate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zoneinfo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    /// Seconds since the epoch of the last change of the end-user's information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
    /// Claims beyond §5.1, released by custom scopes (see `ProviderBuilder::custom_scope`).
    #[serde(flatten)]
    pub custom: Map<String, Value>,
}

/// The claims each standard scope releases (OIDC Core §5.4).
pub const SCOPE_CLAIMS: [(&str, &[&str]); 4] = [
    (
        "profile",
        &[
            "name",
            "family_name",
            "given_name",
            "middle_name",
            "nickname",
            "preferred_username",
            "profile",
            "picture",
            "website",
            "gender",
            "birthdate",
            "zoneinfo",
            "locale",
            "updated_at",
        ],
    ),
    ("email", &["email", "email_verified"]),
    ("address", &["address"]),
    ("phone", &["phone_number", "phone_number_verified"]),
];

impl UserInfo {
    /// The claims `scope` releases, with `sub` first: Authlib's `generate_user_info(user, scope)`.
    pub fn for_scope(
        &self,
        subject: &str,
        scope: &Scope,
        provider: &Provider,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("sub".to_owned(), Value::String(subject.to_owned()));
        let Ok(Value::Object(mut all)) = serde_json::to_value(self) else {
            return out;
        };
        let standard = SCOPE_CLAIMS
            .iter()
            .filter(|(s, _)| scope.contains(s))
            .flat_map(|(_, claims)| claims.iter().copied());
        for claim in standard.chain(provider.custom_claims_for(scope)) {
            if claim == "sub" {
                continue;
            }
            if let Some(v) = all.remove(claim) {
                out.insert(claim.to_owned(), v);
            }
        }
        out
    }
}
