// The admin status page: reads /status every five seconds (with the admin
// token when the listener has one), renders with textContent only (error
// texts come from the identity service), and renews a client on request.
"use strict";

const POLL_MS = 5000;
let status = null;
const renewResults = {}; // client name → text of its last renewal

const token = () => sessionStorage.getItem("bp-admin-token") || "";

function headers(extra) {
  const h = Object.assign({}, extra);
  if (token()) h.Authorization = "Bearer " + token();
  return h;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return e;
}

function countdown(iso) {
  if (!iso) return "—";
  const s = Math.round((Date.parse(iso) - Date.now()) / 1000);
  if (s <= 0) return "now (" + iso + ")";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return (h ? h + "h " : "") + (h || m ? m + "m " : "") + sec + "s";
}

function stateOf(c) {
  if (!c.token_valid) return "failing";
  if (c.renewing || c.consecutive_failures > 0) return "renewing";
  return "valid";
}

function row(dl, label, value, cls) {
  const dd = el("dd", cls ? { class: cls } : {}, value);
  dl.append(el("dt", {}, label), dd);
  return dd;
}

function clientCard(c) {
  const key = c.client + " " + c.scopes.join(" ");
  const state = stateOf(c);
  const card = el("div", { class: "card", "data-client": c.client, "data-key": key });
  const renew = el("button", { class: "renew", type: "button" }, "renew now");
  const result = el("span", { class: "result" }, renewResults[c.client] || "");
  renew.addEventListener("click", () => renewClient(c.client, renew, result));
  card.append(el("h3", {}, c.client, el("span", { class: "state " + state }, state), renew, result));
  const dl = el("dl");
  row(dl, "scopes", c.scopes.join(" "));
  row(dl, "expires in", countdown(c.token_expires_at), "countdown expires").dataset.at = c.token_expires_at || "";
  row(dl, "next renewal in", countdown(c.next_renewal_at), "countdown renewal").dataset.at = c.next_renewal_at || "";
  row(dl, "token from", c.token_source === "shared" ? "shared cache" : "identity service");
  if (c.client_certificate) {
    row(dl, "authenticates by", "certificate " + c.client_certificate.subject, "certificate");
    row(dl, "certificate expires", c.client_certificate.expires_at, "certificate-expiry");
  }
  row(dl, "last fetch", (c.last_outcome || "—") + (c.last_fetch_at ? " at " + c.last_fetch_at : ""));
  if (c.last_error) row(dl, "last error", c.last_error, "error");
  if (c.last_idp_error) row(dl, "identity service said", c.last_idp_error);
  if (c.last_ecid) row(dl, "ecid", c.last_ecid);
  row(dl, "fetches", "", "fetches").append(
    el("span", { class: "successes" }, c.fetch_successes), " ok, ",
    el("span", { class: "failures" }, c.fetch_failures), " failed, ",
    el("span", { class: "rate-waits" }, c.rate_waits), " waited for the rate ceiling");
  card.append(dl);
  if (c.upstream_refusal) card.append(episodeOf(c.upstream_refusal));
  return card;
}

// An on_behalf_of: caller client: how many callers hold a token, and how
// many were refused (counts only; the page never sees a user name).
function callersCard(f) {
  const card = el("div", { class: "card", "data-callers": f.client });
  card.append(el("h3", {}, f.client, el("span", { class: "state valid" }, "per caller")));
  const dl = el("dl");
  row(dl, "scopes", f.scopes.join(" "));
  row(dl, "grant", f.grant + ", as each caller");
  row(dl, "cached callers", "", "callers").append(
    el("span", { class: "cached" }, f.cached_callers), " of ",
    el("span", { class: "max" }, f.max_callers));
  const r = f.refusals;
  row(dl, "refused", "", "refusals").append(
    el("span", { class: "idp-refused" }, r.idp_refused), " by the identity service, ",
    el("span", { class: "remembered" }, r.remembered), " remembered, ",
    el("span", { class: "attempt-limit" }, r.attempt_limit), " over the attempt ceiling");
  row(dl, "evicted", f.evictions_lru + " least recently used, " + f.evictions_idle + " idle");
  card.append(dl);
  return card;
}

// A traffic limit: places in flight against the ceiling, the queue, and
// rejections by reason (counts only; never a caller or an address).
function limitCard(l) {
  const card = el("div", { class: "card", "data-limit": l.name });
  card.append(el("h3", {}, l.name, el("span", { class: "state " + (l.scope.startsWith("local share") ? "renewing" : "valid") }, l.kind)));
  const dl = el("dl");
  row(dl, "limit", "", "ceiling-row").append(el("span", { class: "ceiling" }, l.limit), " per " + l.per);
  if (l.kind === "concurrency") {
    row(dl, "in flight", "", "in-flight-row").append(
      el("span", { class: "in-flight" }, l.in_flight), " of " + l.limit + ", ",
      el("span", { class: "queued" }, l.queued), " queued");
  }
  const reasons = Object.entries(l.rejections).map(([reason, n]) => reason + ": " + n).join(", ");
  row(dl, "rejected", reasons, "rejections");
  row(dl, "partitions", l.partitions);
  row(dl, "counted by", l.scope + (l.replicas ? " (" + l.replicas + " replicas)" : ""));
  card.append(dl);
  return card;
}

function episodeOf(e) {
  const box = el("div", { class: "episode" });
  box.append(el("strong", {}, (e.active ? "Upstream refuses fresh tokens" : "Last upstream refusal") + " on route " + e.route));
  const dl = el("dl");
  row(dl, "since", e.started_at);
  row(dl, "cool-down until", e.cooldown_until);
  row(dl, "upstream answered", e.status + (e.www_authenticate ? " — " + e.www_authenticate : ""));
  row(dl, "token aud / scope", JSON.stringify(e.token_aud) + " / " + (e.token_scope || "—"));
  row(dl, "upstream host", e.upstream_host);
  row(dl, "401s passed on", e.passed_through);
  row(dl, "likely cause", "the confidential application lacks the ServiceInvoker role on the Oracle Integration instance, or the scope's audience is not the instance's primary audience");
  box.append(dl);
  return box;
}

// "Last 5 min" is the server's window (route_window): a page opened now
// shows the minutes before it was opened too.
function routesTable() {
  const w = status.route_window || { seconds: 0, routes: {} };
  const span = w.seconds >= 300 ? "last 5 min" : "last " + Math.max(1, Math.round(w.seconds / 60)) + " min";
  const table = el("table", {}, el("tr", {}, el("th", {}, "route"), el("th", {}, span),
    el("th", {}, "by status, " + span), el("th", {}, "by status, since start")));
  for (const route of Object.keys(status.route_stats).sort()) {
    const counts = status.route_stats[route], delta = w.routes[route] || {};
    const total = Object.values(delta).reduce((a, n) => a + n, 0);
    const list = o => Object.entries(o).sort().map(([code, n]) => code + ": " + n).join(", ") || "—";
    table.append(el("tr", { "data-route": route }, el("td", {}, route), el("td", {}, total),
      el("td", {}, list(delta)), el("td", {}, list(counts))));
  }
  return table;
}

function render() {
  const c = status.connections;
  document.getElementById("summary").textContent =
    "version " + status.version + " · configuration loaded " + status.config_loaded_at + " · " + (status.ready ? "ready" : "not ready") +
    (c ? " · connections " + c.open + " of " + c.max + (c.refused ? " (" + c.refused + " refused)" : "") : "");
  const refused = document.getElementById("refused");
  const r = status.config_refused;
  refused.hidden = !r;
  refused.textContent = r
    ? "reload refused at " + r.at + " (" + r.trigger + "); the configuration loaded " + status.config_loaded_at + " is still running: " + r.problems.join("; ")
    : "";
  const clients = document.getElementById("clients");
  clients.replaceChildren(...status.clients.map(clientCard), ...(status.callers || []).map(callersCard));
  document.getElementById("routes").replaceChildren(routesTable());
  const limits = status.limits || [];
  document.getElementById("limits-section").hidden = limits.length === 0;
  document.getElementById("limits").replaceChildren(...limits.map(limitCard));
  const s = status.shared_cache;
  document.getElementById("shared").textContent = s
    ? "Redis " + s.url + " (prefix " + s.key_prefix + "): " + (s.healthy ? "healthy" : "unavailable — each replica fetches its own tokens") + (s.last_error ? "; last error: " + s.last_error : "")
    : "memory backend: this replica keeps its own tokens";
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
}

async function poll() {
  if (needsToken && !token()) { showLogin(); return; }
  try {
    const r = await fetch("/status", { headers: headers(), cache: "no-store" });
    if (r.status === 401) { showLogin(); return; }
    if (!r.ok) throw new Error("HTTP " + r.status);
    status = await r.json();
    document.getElementById("login").hidden = true;
    render();
  } catch (e) {
    document.getElementById("updated").textContent = "cannot read /status: " + e.message;
  }
}

async function renewClient(name, button, result) {
  button.disabled = true;
  result.textContent = "renewing…";
  try {
    const r = await fetch("/clients/" + encodeURIComponent(name) + "/renew", {
      method: "POST", headers: headers({ "Content-Type": "application/json" }), body: "{}",
    });
    const body = await r.json();
    renewResults[name] = (body.renewed || []).map(x => x.outcome + (x.error ? ": " + x.error : "")).join("; ") || body.message || ("HTTP " + r.status);
  } catch (e) {
    renewResults[name] = "renew failed: " + e.message;
  }
  result.textContent = renewResults[name];
  button.disabled = false;
  await poll();
}

function showLogin() {
  document.getElementById("login").hidden = false;
  document.getElementById("summary").textContent = "this admin listener needs its token";
}

function tick() {
  for (const dd of document.querySelectorAll(".countdown")) dd.textContent = countdown(dd.dataset.at);
}

let needsToken = false;

async function start() {
  try {
    const r = await fetch("/healthz", { cache: "no-store" });
    needsToken = (await r.json()).admin_token === true;
  } catch (e) {
    document.getElementById("updated").textContent = "cannot reach the admin listener: " + e.message;
  }
  poll();
  setInterval(poll, POLL_MS);
  setInterval(tick, 1000);
}

document.getElementById("login").addEventListener("submit", ev => {
  ev.preventDefault();
  sessionStorage.setItem("bp-admin-token", document.getElementById("token").value);
  poll();
});
start();
