//! The identity domain's SCIM bodies that `onboard` sends and reads, typed
//! so a misspelt attribute is a compile error rather than a silent no-op
//! at Oracle. Secrets arrive as [`Secret`], whose `Debug` is redacted.

use serde::{Deserialize, Deserializer, Serialize};

use crate::config::Secret;

pub const APP_SCHEMA: &str = "urn:ietf:params:scim:schemas:oracle:idcs:App";
pub const GRANT_SCHEMA: &str = "urn:ietf:params:scim:schemas:oracle:idcs:Grant";
pub const STATUS_SCHEMA: &str = "urn:ietf:params:scim:schemas:oracle:idcs:AppStatusChanger";
pub const REGENERATOR_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:oracle:idcs:AppClientSecretRegenerator";
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The template of a confidential web application, as the console uses.
pub const CONFIDENTIAL_TEMPLATE: &str = "CustomWebAppTemplateId";

/// A SCIM list response.
#[derive(Debug, Deserialize)]
pub struct ListResponse<T> {
    #[serde(rename = "Resources", default = "Vec::new")]
    pub resources: Vec<T>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fqs {
    pub fqs: String,
}

/// An entry of an application's `grantedAppRoles`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantedRole {
    pub value: String,
    #[serde(default)]
    pub display: Option<String>,
}

/// An App resource as read.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct App {
    pub id: String,
    /// The client id of an OAuth client.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(rename = "isOAuthClient", default)]
    pub is_oauth_client: Option<bool>,
    #[serde(default)]
    pub client_type: Option<String>,
    /// Set on a resource application: the prefix of its scopes.
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(default)]
    pub allowed_grants: Vec<String>,
    #[serde(default)]
    pub allowed_scopes: Vec<Fqs>,
    #[serde(default)]
    pub granted_app_roles: Vec<GrantedRole>,
    /// Only in the answer to a create.
    #[serde(default, deserialize_with = "secret")]
    pub client_secret: Option<Secret>,
}

impl App {
    pub fn is_confidential_client(&self) -> bool {
        self.is_oauth_client == Some(true) && self.client_type.as_deref() == Some("confidential")
    }
}

/// `POST /admin/v1/Apps`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewApp {
    pub schemas: [&'static str; 1],
    pub display_name: String,
    pub description: String,
    #[serde(rename = "isOAuthClient")]
    pub is_oauth_client: bool,
    pub client_type: &'static str,
    pub based_on_template: Reference,
    pub allowed_grants: Vec<String>,
    pub allowed_scopes: Vec<Fqs>,
    pub active: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reference {
    pub value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRole {
    pub id: String,
}

/// `POST /admin/v1/Grants`: an application role to an application.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewGrant {
    pub schemas: [&'static str; 1],
    pub grant_mechanism: &'static str,
    pub grantee: Grantee,
    pub app: Reference,
    pub entitlement: Entitlement,
}

#[derive(Debug, Serialize)]
pub struct Grantee {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entitlement {
    pub attribute_name: &'static str,
    pub attribute_value: String,
}

/// `PUT /admin/v1/AppStatusChanger/{id}`.
#[derive(Debug, Serialize)]
pub struct StatusChange {
    pub active: bool,
    pub schemas: [&'static str; 1],
}

/// `POST /admin/v1/AppClientSecretRegenerator`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretRegenerator {
    pub app_id: String,
    pub schemas: [&'static str; 1],
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegeneratedSecret {
    #[serde(deserialize_with = "secret")]
    pub client_secret: Option<Secret>,
}

/// `PATCH /admin/v1/Apps/{id}`.
#[derive(Debug, Serialize)]
pub struct PatchOp {
    pub schemas: [&'static str; 1],
    #[serde(rename = "Operations")]
    pub operations: Vec<Operation>,
}

#[derive(Debug, Serialize)]
pub struct Operation {
    pub op: &'static str,
    pub path: &'static str,
    pub value: serde_json::Value,
}

/// A SCIM error body: its `detail` is what the command reports.
#[derive(Debug, Deserialize)]
pub struct ScimError {
    #[serde(default)]
    pub detail: Option<String>,
}

/// The admin token: only the token itself is kept.
#[derive(Debug, Deserialize)]
pub struct TokenAnswer {
    #[serde(deserialize_with = "secret")]
    pub access_token: Option<Secret>,
}

/// An OAuth error from the token endpoint.
#[derive(Debug, Deserialize)]
pub struct OAuthError {
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
}

fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Ok(Option::<String>::deserialize(d)?
        .filter(|s| !s.is_empty())
        .map(Secret::new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_app_reads_with_its_secret_redacted() {
        let app: App = serde_json::from_str(
            r#"{"id":"a1","name":"c1","displayName":"orders","isOAuthClient":true,
                "clientType":"confidential","clientSecret":"idcscs-s3cret",
                "allowedScopes":[{"fqs":"https://x:443urn:opc:resource:consumer::all"}],
                "grantedAppRoles":[{"value":"r1","display":"ServiceInvoker","appId":"i1"}]}"#,
        )
        .unwrap();
        assert!(app.is_confidential_client());
        assert_eq!(
            app.client_secret.as_ref().unwrap().expose(),
            "idcscs-s3cret"
        );
        assert!(!format!("{app:?}").contains("s3cret"));
        assert_eq!(
            app.granted_app_roles[0].display.as_deref(),
            Some("ServiceInvoker")
        );
    }

    #[test]
    fn a_grant_is_written_with_the_names_oracle_reads() {
        let grant = NewGrant {
            schemas: [GRANT_SCHEMA],
            grant_mechanism: "ADMINISTRATOR_TO_APP",
            grantee: Grantee {
                kind: "App",
                value: "a1".into(),
            },
            app: Reference { value: "i1".into() },
            entitlement: Entitlement {
                attribute_name: "appRoles",
                attribute_value: "r1".into(),
            },
        };
        let v = serde_json::to_value(&grant).unwrap();
        assert_eq!(v["grantMechanism"], "ADMINISTRATOR_TO_APP");
        assert_eq!(v["grantee"]["type"], "App");
        assert_eq!(v["entitlement"]["attributeValue"], "r1");
        assert_eq!(v["app"]["value"], "i1");
    }
}
