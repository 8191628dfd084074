// The status page in a real browser. Loads it from a running proxy's admin
// listener, signs in with the admin token, waits for the client rows,
// checks the states shown for a healthy client and for one whose identity
// service is down, clicks "renew now" on the healthy one and waits for its
// fetch count to move, saves a screenshot, and fails on any console error.
// With a sixth argument, also checks the card of that on_behalf_of: caller
// client: one cached caller of 10000, one refusal by the identity service.
// With a seventh, checks that a refused reload is shown with that text.
// With an eighth, "client=subject": that client's card says it
// authenticates by the certificate with that subject, and its expiry.
// With a ninth, "limit=ceiling=rejections": that limit's card shows the
// ceiling and the rejections text. With a tenth, a route whose requests
// came before the page opened: its "last 5 min" count is at least 2.
//   usage: node status_page.mjs <admin url> <token> <healthy> <failing> <screenshot.png> [per-caller client] [refused reload text] [client=certificate subject] [limit=ceiling=rejections]
import { chromium } from "playwright-core";

const [url, token, healthy, failing, shot, perCaller, refusedText, certificate, limit, busyRoute] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
const errors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  page.on("console", m => { if (m.type() === "error") errors.push("console: " + m.text()); });
  page.on("pageerror", e => errors.push("page: " + e.message));
  await page.goto(url);
  await page.waitForSelector("#login:not([hidden])");
  await page.fill("#token", token);
  await page.click("#use-token");
  const card = name => `[data-client="${name}"]`;
  await page.waitForSelector(card(healthy) + " .state");
  await page.waitForSelector(card(failing) + " .state");
  const state = async name => (await page.textContent(card(name) + " .state")).trim();
  if (await state(healthy) !== "valid") throw new Error(`${healthy} shows ${await state(healthy)}, not valid`);
  if (await state(failing) !== "failing") throw new Error(`${failing} shows ${await state(failing)}, not failing`);
  const failingText = await page.textContent(card(failing));
  if (!failingText.includes("idp_unavailable")) throw new Error(`no outcome shown for ${failing}: ${failingText}`);
  const before = await page.textContent(card(healthy) + " .successes");
  await page.click(card(healthy) + " button.renew");
  await page.waitForFunction(
    ([sel, b]) => document.querySelector(sel)?.textContent !== b,
    [card(healthy) + " .successes", before],
    { timeout: 10000 },
  );
  const after = await page.textContent(card(healthy) + " .successes");
  const summary = await page.textContent("#summary");
  if (!/connections \d+ of \d+/.test(summary)) throw new Error(`no connection count in the summary: ${summary}`);
  if (perCaller) {
    const callers = `[data-callers="${perCaller}"]`;
    await page.waitForSelector(callers + " .cached");
    const shown = async cls => (await page.textContent(callers + " " + cls)).trim();
    const seen = [await shown(".cached"), await shown(".max"), await shown(".idp-refused")].join("/");
    if (seen !== "1/10000/1") throw new Error(`${perCaller} shows cached/max/refused ${seen}, not 1/10000/1`);
  }
  if (busyRoute) {
    // Traffic from before the page was opened shows in "last 5 min".
    const cell = `[data-route="${busyRoute}"] td:nth-child(2)`;
    await page.waitForSelector(cell);
    const recent = Number((await page.textContent(cell)).trim());
    if (!(recent >= 2)) throw new Error(`${busyRoute} shows ${recent} answers in the last minutes, not its earlier traffic`);
  }
  if (limit) {
    const [name, ceiling, rejections] = limit.split("=");
    const sel = `[data-limit="${name}"]`;
    await page.waitForSelector(sel + " .ceiling");
    const shownCeiling = (await page.textContent(sel + " .ceiling")).trim();
    const shownRejections = (await page.textContent(sel + " .rejections")).trim();
    if (shownCeiling !== ceiling || !shownRejections.includes(rejections)) {
      throw new Error(`${name} shows ${shownCeiling} / ${shownRejections}, not ${ceiling} / ${rejections}`);
    }
  }
  if (refusedText) {
    await page.waitForSelector("#refused:not([hidden])");
    const refused = await page.textContent("#refused");
    if (!refused.includes(refusedText) || !refused.includes("reload refused")) throw new Error(`refused reload shown as: ${refused}`);
  }
  if (certificate) {
    const [name, subject] = certificate.split("=", 2).length === 2
      ? [certificate.slice(0, certificate.indexOf("=")), certificate.slice(certificate.indexOf("=") + 1)]
      : [certificate, ""];
    await page.waitForSelector(card(name) + " .certificate");
    const shown = await page.textContent(card(name) + " .certificate");
    if (!shown.includes(subject)) throw new Error(`${name} shows certificate ${shown}, not ${subject}`);
    const expiry = await page.textContent(card(name) + " .certificate-expiry");
    if (!/^\d{4}-\d\d-\d\dT/.test(expiry.trim())) throw new Error(`${name} shows certificate expiry ${expiry}`);
  }
  await page.waitForSelector("[data-route]");
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`status page ok: ${healthy} valid, ${failing} failing, fetches ${before} -> ${after}`);
} catch (e) {
  errors.push(e.message);
} finally {
  await browser.close();
}
if (errors.length) {
  console.error(errors.join("\n"));
  process.exit(1);
}
