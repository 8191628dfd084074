//! Oracle scope strings: which resource server a scope belongs to.
//!
//! An Oracle Integration scope is `https://<host>:443urn:opc:resource:consumer::all`
//! or `https://<host>:443/ic/api/`: its resource server is the
//! `scheme://host[:port]` prefix. Unprefixed scopes (`urn:opc:idm:…`,
//! `offline_access`, `openid`) belong to the identity domain itself.

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
