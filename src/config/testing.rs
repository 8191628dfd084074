//! Small configurations for unit tests elsewhere in the crate.

/// One client `c` and `routes` (YAML list items, e.g. from [`route`]).
pub fn with_routes(routes: &[String]) -> String {
    format!(
        "clients:\n  c:\n    token_url: \"https://idcs.example.com/oauth2/v1/token\"\n    client_id: x\n    client_secret: y\n    scopes: [\"https://oic.example.com:443urn:opc:resource:consumer::all\"]\nroutes:\n{}",
        routes.concat()
    )
}

/// A route `name` under `/name/` to `upstream` for client `c`, open to any
/// caller; `extra` are more route settings, each line indented by four.
pub fn route(name: &str, upstream: &str, extra: &str) -> String {
    format!("  - name: {name}\n    match: {{ path_prefix: \"/{name}/\" }}\n    upstream: \"{upstream}\"\n{extra}    client: c\n    access: {{ allow_any: true }}\n")
}
