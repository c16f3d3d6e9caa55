// End to end in a real browser: Debian's Chromium (driven by playwright-core) against the
// built Worker served by workerd over HTTP on 127.0.0.1, and the Auth0 emulator. Covers the
// landing page with and without JavaScript, and CORS as the browser enforces it.
// Needs Chromium at $CHROMIUM_PATH or /usr/bin/chromium (scripts/test.sh installs it), scripts/build.sh and
// `cargo build -p auth0-emulator`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { randomUUID } from "node:crypto";
import { chromium } from "playwright-core";
import { startEmulator, startWorkerHttp, until } from "./harness.mjs";

const ACCEPTED_MESSAGE = "Check your inbox for a link to set your password.";
const STEP_TIMEOUT_MS = 10_000;
/** How long the queue consumer gets to do a sign-up's Auth0 work and email (after the 202). */

let emu;
let worker;
let browser;
const pageServers = []; // [allowed, other]

const uniqueEmail = (tag) => `browser-${tag}-${randomUUID().slice(0, 8)}@example.com`;

/** A page on its own origin whose script posts `?email=` to the Worker's public route. */
function crossOriginPage() {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>embedding page</title></head>
<body><p id="result"></p>
<script>
  const email = new URLSearchParams(location.search).get("email");
  const done = (outcome) => {
    document.getElementById("result").textContent = outcome;
    document.body.dataset.result = outcome;
  };
  fetch(${JSON.stringify(worker.url)} + "/v1/public/invites", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email }),
  }).then((r) => done("ok " + r.status), (e) => done("blocked " + e.name + ": " + e.message));
</script></body></html>`;
}

async function startPageServer() {
  const server = http.createServer((req, res) => {
    if (req.method !== "GET" || !req.url.startsWith("/?")) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
    res.end(crossOriginPage());
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

before(async () => {
  // The page servers first: the Worker's ALLOWED_ORIGINS needs the first one's port.
  pageServers.push(await startPageServer(), await startPageServer());
  emu = await startEmulator();
  worker = await startWorkerHttp(emu.url, { ALLOWED_ORIGINS: pageServers[0].origin });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  await worker?.stop();
  await emu?.stop();
  for (const { server } of pageServers) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** Waits until `email` has its email (the consumer's last step) and returns its users. */
async function processed(email) {
  await until(`the email to ${email}`, () => emu.outbox(email), (m) => m.length >= 1);
  return emu.users(email);
}

/** Runs `fn(page)` in a fresh browser context, closed afterwards. */
async function withPage(contextOptions, fn) {
  const context = await browser.newContext(contextOptions);
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  try {
    return await fn(await context.newPage());
  } finally {
    await context.close();
  }
}

test("with JavaScript: the form shows the success message; user with roles, one email", async () => {
  const email = uniqueEmail("js");
  await withPage({}, async (page) => {
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    // A 404 for /favicon.ico used to show as a console error.
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    await page.goto(worker.url + "/");
    await page.fill("#email", email);
    await page.fill("#name", "Grace Hopper");
    await page.click("#submit");
    const status = page.locator("#status");
    try {
      await page.waitForSelector('#status[data-state="success"]');
    } catch (e) {
      const state = await status.getAttribute("data-state");
      throw new Error(`#status state=${state} text=${JSON.stringify(await status.textContent())} ` +
        `page errors=${JSON.stringify(errors)}`, { cause: e });
    }
    assert.equal(await status.textContent(), ACCEPTED_MESSAGE);
    assert.equal(page.url(), worker.url + "/", "no navigation");
    assert.deepEqual(errors, []);
  });

  const users = await processed(email);
  assert.equal(users.length, 1, JSON.stringify(users));
  assert.deepEqual(users[0].roles, ["beta-tester"]);
  assert.equal(users[0].name, "Grace Hopper");
  const outbox = await emu.outbox(email);
  assert.equal(outbox.length, 1, JSON.stringify(outbox));
  assert.equal(outbox[0].kind, "change_password");
  assert.equal(outbox[0].to, email);
});

test("without JavaScript: the plain form post lands on /thanks", async () => {
  const email = uniqueEmail("nojs");
  await withPage({ javaScriptEnabled: false }, async (page) => {
    await page.goto(worker.url + "/");
    await page.fill("#email", email);
    await page.fill("#name", "Alan Turing");
    const posted = page.waitForResponse((r) => r.url().endsWith("/v1/public/invites"));
    const navigated = page.waitForURL((u) => u.pathname !== "/");
    await page.click("#submit");
    const response = await posted;
    await navigated;
    await page.waitForLoadState();

    const url = new URL(page.url());
    if (url.pathname !== "/thanks") {
      const req = await response.request().allHeaders();
      assert.fail(`expected /thanks, got ${url.pathname}: the POST answered ${response.status()} ` +
        `(request Origin: ${req.origin ?? "none"}, Content-Type: ${req["content-type"]}); ` +
        `page text: ${JSON.stringify((await page.textContent("body")).trim().replace(/\s+/g, " "))}`);
    }
    assert.equal(response.status(), 303);
    assert.equal(url.origin, worker.url);
    assert.ok(await page.isVisible("#thanks"), "#thanks is visible");
    assert.equal((await page.textContent("#thanks")).trim(), "Check your inbox");
  });

  const users = await processed(email);
  assert.equal(users.length, 1, JSON.stringify(users));
  assert.deepEqual(users[0].roles, ["beta-tester"]);
});

test("without JavaScript: an absolute THANK_YOU_URL is reached (the page's CSP allows it)", async () => {
  const target = `${pageServers[1].origin}/?email=thanks`;
  const w = await startWorkerHttp(emu.url, { THANK_YOU_URL: target });
  try {
    await withPage({ javaScriptEnabled: false }, async (page) => {
      await page.goto(w.url + "/");
      await page.fill("#email", uniqueEmail("nojs-abs"));
      const navigated = page.waitForURL((u) => u.origin === pageServers[1].origin);
      await page.click("#submit");
      await navigated;
      assert.equal(page.url(), target);
    });
  } finally {
    await w.stop();
  }
});

test("CORS: an allowed origin's fetch gets 202; any other origin's is blocked by the browser", async () => {
  const [allowed, other] = pageServers;
  const allowedEmail = uniqueEmail("cors-ok");
  const blockedEmail = uniqueEmail("cors-blocked");
  await withPage({}, async (page) => {
    const run = async (origin, email) => {
      await page.goto(`${origin}/?email=${encodeURIComponent(email)}`);
      await page.waitForSelector("body[data-result]");
      return page.evaluate(() => document.body.dataset.result);
    };
    assert.match(await run(other.origin, blockedEmail), /^blocked TypeError: Failed to fetch$/);
    assert.equal(await run(allowed.origin, allowedEmail), "ok 202");
  });

  // The allowed sign-up was sent after the blocked attempt: once it is processed, anything
  // the blocked one had queued would show too.
  const [user] = await processed(allowedEmail);
  assert.deepEqual(user?.roles, ["beta-tester"]);
  assert.deepEqual(await emu.users(blockedEmail), []);
  assert.deepEqual(await emu.outbox(blockedEmail), []);
});
