//! An upstream 401 as the proxy handles it: the route's token slot judges
//! it (renew, or pass it on during an "upstream refuses fresh tokens"
//! episode — see `oauth::unauthorized`), an episode that starts gets one
//! warning an operator can act on, and every 401 is counted by outcome.

use std::time::Duration;

use pingora::http::ResponseHeader;

use super::ctx::RequestCtx;
use super::snapshot::LiveRoute;
use crate::metrics::metrics;
use crate::oauth::token::bearer_claims;
use crate::oauth::{Episode, TokenSlot, Verdict};

/// `outcome` label of `bearer_proxy_upstream_unauthorized_total`.
pub const REPLAYED: &str = "replayed";
pub const PASSED_THROUGH: &str = "passed_through";
pub const COOLDOWN: &str = "cooldown";

/// The slot's verdict on the upstream's 401 to the token this request
/// carried; starts (logs, records) an episode when that is the verdict.
pub fn judge(
    route: &LiveRoute,
    ctx: &RequestCtx,
    answer: &ResponseHeader,
    cooldown: Duration,
) -> Verdict {
    let Some(sent) = &ctx.authorization else {
        return Verdict::Renew;
    };
    let Some(slot) = ctx.slot(route) else {
        return Verdict::Renew;
    };
    let verdict = slot.upstream_refused(sent, cooldown);
    if verdict == Verdict::EpisodeStarts {
        start_episode(route, slot, sent, answer, cooldown);
    }
    verdict
}

/// A 401 the slot wanted renewed whose body was too large to keep: logged
/// and counted as passed through (both transports).
pub fn too_large_to_replay(route: &LiveRoute, ctx: &RequestCtx) {
    tracing::info!(
        request_id = ctx.request_id.to_str().unwrap_or_default(),
        route = route.name.as_str(),
        trace_id = ctx.trace.log_id(),
        "upstream answered 401; body too large to replay, passing the 401 on"
    );
    count(route, PASSED_THROUGH);
}

pub fn count(route: &LiveRoute, outcome: &'static str) {
    metrics()
        .upstream_unauthorized
        .with_label_values(&[route.name.as_str(), outcome])
        .inc();
}

fn start_episode(
    route: &LiveRoute,
    slot: &TokenSlot,
    sent: &http::HeaderValue,
    answer: &ResponseHeader,
    cooldown: Duration,
) {
    let claims = bearer_claims(sent).unwrap_or_default();
    let token_aud = claims.get("aud").cloned();
    let token_scope = claims
        .get("scope")
        .and_then(|s| s.as_str())
        .map(str::to_owned);
    let www_authenticate = answer
        .headers
        .get(http::header::WWW_AUTHENTICATE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let upstream_host = route.upstream.target.host.clone();
    tracing::warn!(
        client = slot.client.name.as_str(),
        route = route.name.as_str(),
        upstream_host = upstream_host.as_str(),
        upstream_status = answer.status.as_u16(),
        www_authenticate = www_authenticate.as_deref(),
        token_aud = token_aud.as_ref().map(|a| a.to_string()),
        token_scope = token_scope.as_deref(),
        cooldown_s = cooldown.as_secs(),
        "the upstream refused a freshly fetched token too, so the token is not the problem: \
         check that the confidential application has the ServiceInvoker role on the Oracle \
         Integration instance, and that the scope's audience (token_aud) is the instance's \
         primary audience (its OAuth configuration), which can differ from upstream_host; \
         401s now pass to clients without renewing until the cool-down ends"
    );
    slot.record_episode(Episode {
        route: route.name.clone(),
        upstream_host,
        started_at: crate::clock::rfc3339(crate::clock::unix_now()),
        cooldown_until: String::new(),
        status: answer.status.as_u16(),
        www_authenticate,
        token_aud,
        token_scope,
        passed_through: 0,
        active: true,
    });
}
