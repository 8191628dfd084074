//! The identity domain's resources as the emulator keeps them, and their
//! SCIM JSON shapes (the identity domain's `urn:ietf:params:scim:schemas:
//! oracle:idcs:*` schemas, with the attributes this job reads).

use std::time::Instant;

use serde_json::{json, Value};

pub const APP_SCHEMA: &str = "urn:ietf:params:scim:schemas:oracle:idcs:App";
pub const GRANT_SCHEMA: &str = "urn:ietf:params:scim:schemas:oracle:idcs:Grant";
pub const APP_ROLE_SCHEMA: &str = "urn:ietf:params:scim:schemas:oracle:idcs:AppRole";
pub const STATUS_SCHEMA: &str = "urn:ietf:params:scim:schemas:oracle:idcs:AppStatusChanger";
pub const REGENERATOR_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:oracle:idcs:AppClientSecretRegenerator";
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The grant types an application may allow, by their wire names.
pub const KNOWN_GRANTS: [&str; 5] = [
    "client_credentials",
    "password",
    "refresh_token",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
    "tls_client_auth",
];

/// The scopes an Oracle Integration instance's application defines; an
/// application's `allowedScopes` are these behind the instance's audience.
pub const OIC_SCOPES: [&str; 2] = ["urn:opc:resource:consumer::all", "ic/api/"];

/// The instance application's roles, as Oracle Integration defines them.
pub const OIC_ROLES: [&str; 7] = [
    "ServiceAdministrator",
    "ServiceDeveloper",
    "ServiceDeployer",
    "ServiceMonitor",
    "ServiceUser",
    "ServiceViewer",
    "ServiceInvoker",
];

pub struct App {
    pub id: String,
    /// The client id.
    pub name: String,
    pub display_name: String,
    /// Set on a resource application (an Oracle Integration instance's).
    pub audience: Option<String>,
    pub is_oauth_client: bool,
    pub client_type: Option<String>,
    pub template: Option<String>,
    pub active: bool,
    pub allowed_grants: Vec<String>,
    pub allowed_scopes: Vec<String>,
    pub secret: Option<String>,
    /// When the last activation has reached every node of the domain.
    pub usable_from: Option<Instant>,
}

pub struct AppRole {
    pub id: String,
    pub display_name: String,
    pub app_id: String,
    pub app_name: String,
}

pub struct Grant {
    pub id: String,
    pub grantee: String,
    pub app_id: String,
    pub role_id: String,
}

impl App {
    /// The App resource, without its secret (the identity domain returns
    /// it only when it is made).
    pub fn to_json(&self, granted: Vec<Value>) -> Value {
        let mut v = json!({
            "schemas": [APP_SCHEMA],
            "id": self.id,
            "name": self.name,
            "displayName": self.display_name,
            "active": self.active,
            "isOAuthClient": self.is_oauth_client,
            "allowedGrants": self.allowed_grants,
            "allowedScopes": self.allowed_scopes.iter().map(|s| json!({"fqs": s})).collect::<Vec<_>>(),
            "grantedAppRoles": granted,
            "meta": {"resourceType": "App", "location": format!("/admin/v1/Apps/{}", self.id)},
        });
        if let Some(t) = &self.client_type {
            v["clientType"] = json!(t);
        }
        if let Some(t) = &self.template {
            v["basedOnTemplate"] = json!({ "value": t });
        }
        if let Some(a) = &self.audience {
            v["audience"] = json!(a);
            v["isOAuthResource"] = json!(true);
            v["scopes"] = json!(OIC_SCOPES
                .iter()
                .map(|s| json!({ "value": s }))
                .collect::<Vec<_>>());
        }
        v
    }

    pub fn is_confidential_client(&self) -> bool {
        self.is_oauth_client && self.client_type.as_deref() == Some("confidential")
    }
}

impl AppRole {
    pub fn to_json(&self) -> Value {
        json!({
            "schemas": [APP_ROLE_SCHEMA],
            "id": self.id,
            "displayName": self.display_name,
            "app": {"value": self.app_id, "display": self.app_name},
        })
    }

    /// The entry of a grantee's `grantedAppRoles`.
    pub fn granted_json(&self) -> Value {
        json!({
            "value": self.id,
            "display": self.display_name,
            "appId": self.app_id,
            "appName": self.app_name,
        })
    }
}

impl Grant {
    pub fn to_json(&self) -> Value {
        json!({
            "schemas": [GRANT_SCHEMA],
            "id": self.id,
            "grantMechanism": "ADMINISTRATOR_TO_APP",
            "grantee": {"type": "App", "value": self.grantee},
            "app": {"value": self.app_id},
            "entitlement": {"attributeName": "appRoles", "attributeValue": self.role_id},
        })
    }
}

/// A SCIM list response of `resources`.
pub fn list(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len().max(50),
        "Resources": resources,
    })
}

/// A new 32-hex-digit identifier, the shape of the domain's ids.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A new client secret, the shape of the domain's.
pub fn new_secret() -> String {
    format!("idcscs-{}", uuid::Uuid::new_v4())
}
