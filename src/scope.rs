//! Oracle scope strings: which resource server a scope belongs to.
//!
//! An Oracle Integration scope is `https://<host>:443urn:opc:resource:consumer::all`
//! or `https://<host>:443/ic/api/`: its resource server is the
//! `scheme://host[:port]` prefix. Unprefixed scopes (`urn:opc:idm:…`,
//! `offline_access`, `openid`) belong to the identity domain itself.

/// Asks for a refresh token; belongs to no resource server.
pub const OFFLINE_ACCESS: &str = "offline_access";

/// Scopes that modify a request rather than name a resource, so they mix
/// with any resource server: `offline_access` and Oracle's
/// `urn:opc:resource:expiry=<seconds>`.
pub fn is_modifier(scope: &str) -> bool {
    scope == OFFLINE_ACCESS || scope.starts_with("urn:opc:resource:expiry=")
}

/// Who a scope belongs to, for messages: its resource server, or "the
/// identity domain" for unprefixed scopes.
pub fn owner(scope: &str) -> &str {
    resource_server(scope).unwrap_or("the identity domain")
}

/// Oracle refuses a token for scopes of two resource servers. Returns a
/// message naming each scope and its owner when `scopes` mixes them.
pub fn check_single_resource_server(scopes: &[String]) -> Result<(), String> {
    let mut owners: Vec<&str> = Vec::new();
    for s in scopes.iter().filter(|s| !is_modifier(s)) {
        let o = owner(s);
        if !owners.contains(&o) {
            owners.push(o);
        }
    }
    if owners.len() <= 1 {
        return Ok(());
    }
    let listed: Vec<String> = scopes
        .iter()
        .filter(|s| !is_modifier(s))
        .map(|s| format!("{s:?} belongs to {}", owner(s)))
        .collect();
    Err(format!(
        "scopes of different resource servers cannot be requested in one token (Oracle refuses it): {}; split them into separate routes or clients",
        listed.join(", ")
    ))
}

/// A `/` before `urn:` (`https://host:443/urn:opc:…`) is a common copy-paste
/// mistake that the identity service rejects as an unknown scope.
pub fn slash_before_urn(scope: &str) -> Option<String> {
    let server = resource_server(scope)?;
    let rest = &scope[server.len()..];
    rest.strip_prefix("/urn:")
        .map(|tail| format!("{server}urn:{tail}"))
}

/// The `scheme://host[:port]` prefix of a scope, or `None` for a scope of
/// the identity domain itself.
pub fn resource_server(scope: &str) -> Option<&str> {
    let scheme_len = if scope.starts_with("https://") {
        8
    } else if scope.starts_with("http://") {
        7
    } else {
        return None;
    };
    let rest = &scope[scheme_len..];
    let host_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
        .unwrap_or(rest.len());
    if host_len == 0 {
        return None;
    }
    let mut end = scheme_len + host_len;
    if let Some(port) = scope[end..].strip_prefix(':') {
        let digits = port.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            end += 1 + digits;
        }
    }
    Some(&scope[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn one_resource_server_per_request() {
        assert!(check_single_resource_server(&v(&[
            "https://a.example:443urn:opc:resource:consumer::all",
            "https://a.example:443/ic/api/",
            "offline_access",
            "urn:opc:resource:expiry=300",
        ]))
        .is_ok());
        let e = check_single_resource_server(&v(&[
            "https://a.example:443urn:opc:resource:consumer::all",
            "https://b.example:443urn:opc:resource:consumer::all",
        ]))
        .unwrap_err();
        assert!(
            e.contains("https://a.example:443") && e.contains("https://b.example:443"),
            "{e}"
        );
        let e =
            check_single_resource_server(&v(&["urn:opc:idm:__myscopes__", "https://a.example/x"]))
                .unwrap_err();
        assert!(e.contains("the identity domain"), "{e}");
    }

    #[test]
    fn detects_slash_before_urn() {
        assert_eq!(
            slash_before_urn("https://a.example:443/urn:opc:resource:consumer::all").as_deref(),
            Some("https://a.example:443urn:opc:resource:consumer::all")
        );
        assert_eq!(
            slash_before_urn("https://a.example:443urn:opc:resource:consumer::all"),
            None
        );
        assert_eq!(slash_before_urn("https://a.example:443/ic/api/"), None);
    }

    #[test]
    fn finds_the_resource_server_prefix() {
        assert_eq!(
            resource_server("https://oic.example.com:443urn:opc:resource:consumer::all"),
            Some("https://oic.example.com:443")
        );
        assert_eq!(
            resource_server("https://oic.example.com:443/ic/api/"),
            Some("https://oic.example.com:443")
        );
        assert_eq!(
            resource_server("https://h.example/x"),
            Some("https://h.example")
        );
        assert_eq!(resource_server("urn:opc:idm:__myscopes__"), None);
        assert_eq!(resource_server("offline_access"), None);
        assert_eq!(resource_server("https://"), None);
    }
}
