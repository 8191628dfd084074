//! Why a token could not be obtained, classified once so that metrics,
//! logs, retries and the client-facing response all agree.

use std::time::Duration;

/// The identity service's own error fields. Logged; never sent to the
/// proxy's clients beyond `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpError {
    pub code: String,
    pub description: Option<String>,
    /// Oracle's execution context id, the handle Oracle support asks for.
    pub ecid: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("identity service unreachable: {0}")]
    Unreachable(String),
    #[error("identity service timed out")]
    Timeout,
    #[error("identity service failed with HTTP {status}")]
    ServerError { status: u16, idp: Option<IdpError> },
    #[error("identity service rate limit hit (HTTP 429)")]
    RateLimited { retry_after: Option<Duration> },
    #[error("identity service rejected the request: HTTP {status} {}", .idp.code)]
    Rejected { status: u16, idp: IdpError },
    #[error("invalid token response: {0}")]
    InvalidResponse(String),
    /// Not sent: this caller's password grant is held back (a refusal
    /// remembered by the fleet, or the per-user attempt ceiling).
    #[error("password grant for this caller held back ({reason})")]
    CallerRefused { reason: &'static str },
    /// A caller's first token did not arrive within the request's wait
    /// (the rate ceiling queued it, or the identity service is slow); the
    /// fetch goes on and the next request may find the token.
    #[error("no token within the request's wait; the fetch goes on")]
    Queued,
    /// The request could not be built (an assertion could not be signed).
    /// Keys are test-signed at load, so this is not expected in practice.
    #[error("{0}")]
    Local(String),
}

impl FetchError {
    /// The `outcome` label of `bearer_proxy_token_fetch_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            FetchError::Unreachable(_)
            | FetchError::Timeout
            | FetchError::ServerError { .. }
            | FetchError::Queued => "idp_unavailable",
            FetchError::CallerRefused { .. } => "caller_refused",
            FetchError::RateLimited { .. } => "rate_limited",
            FetchError::Rejected { .. } => "idp_rejected",
            FetchError::InvalidResponse(_) | FetchError::Local(_) => "invalid_response",
        }
    }

    /// The identity service refused these credentials, scopes or refresh
    /// token (`invalid_grant`): retrying soon will not help, and the client
    /// is told so (502, not 503).
    pub fn is_rejection(&self) -> bool {
        matches!(self, FetchError::Rejected { .. })
    }

    /// The identity service refused the grant itself (`invalid_grant`):
    /// for a caller, a wrong password or an unknown user.
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, FetchError::Rejected { idp, .. } if idp.code.eq_ignore_ascii_case("invalid_grant"))
    }

    pub fn idp(&self) -> Option<&IdpError> {
        match self {
            FetchError::Rejected { idp, .. } => Some(idp),
            FetchError::ServerError { idp, .. } => idp.as_ref(),
            _ => None,
        }
    }
}
