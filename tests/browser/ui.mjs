// Drives the on-call pages in headless Chromium (playwright-core, Debian's /usr/bin/chromium)
// against the loopback server of tests/e2e/test_ui_browser.py, after its scripted rollout.
// Usage: node tests/browser/ui.mjs <base-url> <commit> <artifacts-dir>
// Asserts what a person sees; exits non-zero naming the first failed check. Screenshots go to
// <artifacts-dir> (desktop 1440 px and a phone, 390 px).
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [base, commit, out] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"];
mkdirSync(out, { recursive: true });

const problems = []; // console errors, page errors, CSP violations: none is allowed

function watch(page, label) {
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") problems.push(`${label} console ${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`${label} page error: ${e.message}`));
  // Playwright's init scripts run outside the page's CSP: they only listen.
  page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) =>
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
}

async function cspViolations(page) {
  return page.evaluate(() => window.__csp);
}

async function noHorizontalScroll(page, label) {
  const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  assert.ok(scroll <= width, `${label}: the page is ${scroll}px wide in a ${width}px viewport`);
}

const browser = await chromium.launch({ executablePath, args });
try {
  // --- desktop: the index after the failure --------------------------------------------------
  const desktop = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await desktop.newPage();
  watch(page, "desktop");
  const response = await page.goto(`${base}/api/ui?refresh=1`);
  assert.equal(response.status(), 200);
  const csp = response.headers()["content-security-policy"];
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.ok(await page.locator('meta[name="viewport"]').count(), "viewport meta");

  const gate = page.getByRole("article", { name: "Gate prod" });
  await gate.waitFor();
  const gateText = await gate.innerText();
  assert.match(gateText, /waiting/);
  assert.match(gateText, /prod-eu: FAILED Kustomization\/flux-system\/apps: HealthCheckFailed/);
  assert.match(gateText, /prod-us: runs 0a1b2c3/);
  const box = await gate.boundingBox();
  assert.ok(box && box.y + box.height <= 900, "the failing gate is on the first screen");
  const prodEu = page.getByRole("listitem", { name: /^prod-eu: failed on 9f8e7d6/ });
  assert.equal(await prodEu.count(), 1, "prod-eu tile: failed on the new commit");
  assert.match(await prodEu.innerText(), /✗ failed/); // a symbol and a word, not colour alone
  assert.equal(await page.getByRole("listitem", { name: /^dev-1: succeeded on 9f8e7d6/ }).count(), 1);
  const table = await page.getByRole("table", { name: "prod: clusters not healthy" }).innerText();
  assert.match(table, /Health check failed after 5m0s/);
  assert.match(await page.getByRole("table", { name: "prod: recent commits" }).innerText(), /9f8e7d6\s+✗ failed/);
  await page.screenshot({ path: join(out, "index-desktop.png") });
  await page.screenshot({ path: join(out, "index-desktop-full.png"), fullPage: true });

  // --- live: a new event shows up without a reload --------------------------------------------
  await page.evaluate(() => { window.__same = "no reload"; });
  const before = await page.locator("#updated").innerText();
  const posted = await fetch(`${base}/test/next`, { method: "POST" });
  assert.equal(posted.status, 204);
  await page.getByRole("listitem", { name: /^prod-us: progressing on 9f8e7d6/ }).waitFor({ timeout: 15000 });
  assert.equal(await page.evaluate(() => window.__same), "no reload", "refreshed in place");
  assert.notEqual(await page.locator("#updated").innerText(), before, "says when it updated");
  assert.match(await gate.innerText(), /prod-us: waiting for/);

  // --- keyboard: skip link first, then to the commit page by Enter ------------------------------
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to content");
  const link = page.locator(`#gate-${await page.evaluate(() =>
    document.querySelector('a[id^="gate-"]').id.slice(5))}`);
  await link.focus();
  await Promise.all([page.waitForURL(`**/api/ui/${commit}?refresh=1`), page.keyboard.press("Enter")]);

  // --- the commit page ------------------------------------------------------------------------
  const detail = page.getByRole("article", { name: "Gate prod" });
  const detailText = await detail.innerText();
  assert.match(detailText, /HealthCheckFailed: Health check failed after 5m0s/);
  assert.match(detailText, /the gate fails in 1[0-5] min unless it recovers/);
  const pending = await detail.getByRole("table", { name: "Still pending" }).innerText();
  assert.match(pending, /prod-eu\s+✗ failed/);
  assert.match(pending, /prod-us\s+↻ progressing/);
  const pr = detail.getByRole("link", { name: "pull request 42" });
  assert.match(await pr.getAttribute("href"), /\/_git\/manifests\/pullrequest\/42$/);
  const planLink = detail.getByRole("link", { name: /^pipeline plan / });
  assert.match(await planLink.getAttribute("href"), /\/_apis\/distributedtask\/hubs\/build\/plans\//);
  const statuses = await page.getByRole("table", { name: "Commit statuses" }).innerText();
  assert.match(statuses, /env\/prod\s+✗ failed/);
  assert.match(statuses, /prod-eu\/Kustomization\/flux-system\/apps\s+✗ failed/);
  await page.screenshot({ path: join(out, "commit-desktop.png") });
  await page.screenshot({ path: join(out, "commit-desktop-full.png"), fullPage: true });
  for (const p of await cspViolations(page)) problems.push(`desktop CSP: ${p}`);

  // --- a short SHA that is not unique enough is refused clearly --------------------------------
  const short = await page.request.get(`${base}/api/ui/${commit.slice(0, 5)}`);
  assert.equal(short.status(), 400);

  // --- a phone --------------------------------------------------------------------------------
  const phone = await browser.newContext({
    viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
  });
  const mobile = await phone.newPage();
  watch(mobile, "phone");
  await mobile.goto(`${base}/api/ui`);
  await mobile.getByRole("article", { name: "Gate prod" }).waitFor();
  await noHorizontalScroll(mobile, "phone index");
  const size = await mobile.evaluate(() => parseFloat(getComputedStyle(document.body).fontSize));
  assert.ok(size >= 16, `phone text is ${size}px`);
  await mobile.screenshot({ path: join(out, "index-phone.png") });
  await mobile.goto(`${base}/api/ui/${commit.slice(0, 7)}`);
  await mobile.getByRole("article", { name: "Gate prod" }).waitFor();
  await noHorizontalScroll(mobile, "phone commit page");
  await mobile.screenshot({ path: join(out, "commit-phone.png"), fullPage: true });
  for (const p of await cspViolations(mobile)) problems.push(`phone CSP: ${p}`);

  assert.deepEqual(problems, [], "no console errors and no CSP violations");
  console.log(JSON.stringify({ ok: true, screenshots: out }));
} finally {
  await browser.close();
}
