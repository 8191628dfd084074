//! Route lookup: host (exact, then the longest `*.suffix`, then any host),
//! then the longest `path_prefix` within that host group.
//!
//! Built once per configuration; lookups allocate nothing for lower-case
//! hosts and cost one hash probe per distinct prefix length, so 10,000
//! routes cost about what one does.

use std::borrow::Cow;
use std::collections::HashMap;

/// A route's host: what the table matches (defined here, below the
/// configuration that holds it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Lower-case host name without port.
    Exact(String),
    /// `*.example.com` stored as `.example.com`.
    Suffix(String),
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Suffix(s) => write!(f, "*{s}"),
        }
    }
}

/// Longest-prefix index over the routes of one host group.
#[derive(Debug, Default)]
struct PrefixIndex {
    /// Distinct prefix lengths, longest first.
    lengths: Vec<usize>,
    by_prefix: HashMap<Box<[u8]>, usize>,
}

impl PrefixIndex {
    fn insert(&mut self, prefix: &str, route: usize) -> Option<usize> {
        let previous = self.by_prefix.insert(prefix.as_bytes().into(), route);
        if !self.lengths.contains(&prefix.len()) {
            self.lengths.push(prefix.len());
            self.lengths.sort_unstable_by(|a, b| b.cmp(a));
        }
        previous
    }

    fn find(&self, path: &[u8]) -> Option<usize> {
        self.lengths
            .iter()
            .filter(|&&len| len <= path.len())
            .find_map(|&len| self.by_prefix.get(&path[..len]).copied())
    }
}

/// Maps (host, path) to the index of a route in the configuration.
#[derive(Debug, Default)]
pub struct RouteTable {
    exact: HashMap<Box<str>, PrefixIndex>,
    /// Keyed by the suffix with its leading dot: `.example.com`.
    suffix: HashMap<Box<str>, PrefixIndex>,
    any_host: PrefixIndex,
}

/// Two routes with the same host pattern and prefix.
#[derive(Debug, PartialEq, Eq)]
pub struct DuplicateRoute {
    pub first: usize,
    pub second: usize,
}

impl RouteTable {
    /// Builds the table from `(host, path_prefix)` pairs in route order.
    pub fn build<'a>(
        routes: impl IntoIterator<Item = (Option<&'a HostPattern>, &'a str)>,
    ) -> Result<Self, DuplicateRoute> {
        let mut table = RouteTable::default();
        for (i, (host, prefix)) in routes.into_iter().enumerate() {
            let index = match host {
                None => &mut table.any_host,
                Some(HostPattern::Exact(h)) => table.exact.entry(h.as_str().into()).or_default(),
                Some(HostPattern::Suffix(s)) => table.suffix.entry(s.as_str().into()).or_default(),
            };
            if let Some(first) = index.insert(prefix, i) {
                return Err(DuplicateRoute { first, second: i });
            }
        }
        Ok(table)
    }

    /// The route for a request. `host` is the Host header or URI authority,
    /// with or without a port, in any case.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<usize> {
        let path = path.as_bytes();
        if let Some(host) = host.map(normalize_host) {
            if let Some(i) = self.exact.get(host.as_ref()).and_then(|ix| ix.find(path)) {
                return Some(i);
            }
            if !self.suffix.is_empty() {
                // Each '.' starts a candidate suffix; the first found is the longest.
                for (pos, _) in host.match_indices('.') {
                    if let Some(i) = self.suffix.get(&host[pos..]).and_then(|ix| ix.find(path)) {
                        return Some(i);
                    }
                }
            }
        }
        self.any_host.find(path)
    }
}

/// Strips the port and lower-cases, borrowing when nothing changes.
fn normalize_host(host: &str) -> Cow<'_, str> {
    let host = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port → [v6]
        match rest.find(']') {
            Some(end) => &host[..end + 2],
            None => host,
        }
    } else {
        match host.rfind(':') {
            Some(colon) => &host[..colon],
            None => host,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(h: &str) -> Option<HostPattern> {
        Some(HostPattern::Exact(h.into()))
    }
    fn suffix(s: &str) -> Option<HostPattern> {
        Some(HostPattern::Suffix(s.into()))
    }

    fn table(routes: &[(Option<HostPattern>, &str)]) -> RouteTable {
        RouteTable::build(routes.iter().map(|(h, p)| (h.as_ref(), *p))).unwrap()
    }

    #[test]
    fn longest_prefix_wins_within_a_host_group() {
        let t = table(&[
            (None, "/"),
            (None, "/ic/api/"),
            (None, "/ic/api/integration/"),
        ]);
        assert_eq!(t.find(None, "/other"), Some(0));
        assert_eq!(t.find(None, "/ic/api/x"), Some(1));
        assert_eq!(t.find(None, "/ic/api/integration/v1"), Some(2));
        assert_eq!(t.find(Some("any.host"), "/ic/api/"), Some(1));
    }

    #[test]
    fn exact_host_beats_wildcard_beats_any_host() {
        let t = table(&[
            (None, "/"),
            (suffix(".example.com"), "/"),
            (exact("oic.example.com"), "/"),
            (suffix(".deep.example.com"), "/"),
        ]);
        assert_eq!(t.find(Some("oic.example.com"), "/a"), Some(2));
        assert_eq!(t.find(Some("OIC.Example.COM:8443"), "/a"), Some(2));
        assert_eq!(t.find(Some("x.example.com"), "/a"), Some(1));
        assert_eq!(t.find(Some("a.deep.example.com"), "/a"), Some(3));
        assert_eq!(
            t.find(Some("example.com"), "/a"),
            Some(0),
            "wildcard needs a label"
        );
        assert_eq!(t.find(Some("other.org"), "/a"), Some(0));
        assert_eq!(t.find(None, "/a"), Some(0));
    }

    #[test]
    fn host_group_without_matching_prefix_falls_back() {
        let t = table(&[(exact("a.test"), "/only/"), (None, "/")]);
        assert_eq!(t.find(Some("a.test"), "/only/x"), Some(0));
        assert_eq!(t.find(Some("a.test"), "/else"), Some(1));
    }

    #[test]
    fn no_match_is_none() {
        let t = table(&[(exact("a.test"), "/api/")]);
        assert_eq!(t.find(Some("b.test"), "/api/"), None);
        assert_eq!(t.find(Some("a.test"), "/ap"), None);
        assert_eq!(t.find(None, "/api/"), None);
    }

    #[test]
    fn duplicates_are_reported() {
        let r = [(exact("a"), "/x"), (exact("a"), "/x")];
        let err = RouteTable::build(r.iter().map(|(h, p)| (h.as_ref(), *p))).unwrap_err();
        assert_eq!(
            err,
            DuplicateRoute {
                first: 0,
                second: 1
            }
        );
    }

    #[test]
    fn ipv6_and_trailing_dot_hosts_normalize() {
        assert_eq!(normalize_host("[::1]:8080"), "[::1]");
        assert_eq!(normalize_host("Example.com."), "example.com");
        assert_eq!(normalize_host("h:80"), "h");
    }

    #[test]
    fn non_ascii_paths_do_not_panic() {
        let t = table(&[(None, "/é/")]);
        assert_eq!(t.find(None, "/é/x"), Some(0));
        assert_eq!(t.find(None, "/\u{e9}"), None);
        assert_eq!(t.find(None, "/"), None);
    }
}
