//! The upstream's answer, as both transports take it: what its status
//! tells the token slot (a 401's verdict, throttling counted), and the
//! head every answer passed on gets ([`super::headers::finish_response_head`]).

use pingora::http::ResponseHeader;

use super::ctx::RequestCtx;
use super::snapshot::LiveRoute;
use super::unauthorized;
use crate::metrics::metrics;
use crate::oauth::Verdict;

/// What to do with an upstream's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judged {
    /// Pass it on.
    PassOn,
    /// A 401 the slot wants renewed: replay once with a new token, if the
    /// transport still can (counted by the transport when it does).
    Renew,
}

/// Judges the upstream's answer head: anything but 401 tells the slot its
/// token works (ending the watch on a token that replaced a refused one);
/// a 401 is judged by the slot, once per request — a replay's own 401, or
/// one in an "upstream refuses fresh tokens" cool-down, passes on.
pub fn judge(route: &LiveRoute, ctx: &mut RequestCtx, answer: &ResponseHeader) -> Judged {
    let status = answer.status.as_u16();
    ctx.trace.answered(status);
    if let 429 | 503 = status {
        // Oracle Integration throttling: passed on as it is, never
        // retried, the token untouched.
        metrics()
            .upstream_throttled
            .with_label_values(&[&route.name, answer.status.as_str()])
            .inc();
    }
    if status != 401 {
        if let (Some(sent), Some(slot)) = (&ctx.authorization, ctx.slot(route)) {
            slot.upstream_accepted(sent);
        }
        return Judged::PassOn;
    }
    let cooldown = ctx.snapshot.limits.upstream_401_cooldown;
    let verdict = unauthorized::judge(route, ctx, answer, cooldown);
    if ctx.replay != super::body_copy::Replay::No || verdict != Verdict::Renew {
        let outcome = match verdict {
            Verdict::CoolingDown => unauthorized::COOLDOWN,
            _ => unauthorized::PASSED_THROUGH,
        };
        unauthorized::count(route, outcome);
        return Judged::PassOn;
    }
    Judged::Renew
}
