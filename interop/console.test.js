'use strict';
// The admin console in a real browser: Debian's chromium driven by
// playwright-core. Two browser contexts log in through a login module
// (the ticket API, as the demo's ticket login does): an admin, and a
// user with a page and a websocket open. The admin finds the user's
// session and ends it; the user's websocket gets QPS's
// OnSessionLoggedOut and their next navigation goes to the login module.
// A non-admin gets 403 at the console. Every page is visited without
// console errors and screenshotted into $CONSOLE_SCREENSHOTS (default
// interop/artifacts/).

const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const crypto = require('node:crypto');
const path = require('node:path');
const { chromium } = require('playwright-core');
const { start, startBackend, listen } = require('./lib/openqps');

const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const shots = process.env.CONSOLE_SCREENSHOTS || path.join(__dirname, 'artifacts');

// startLoginModule serves a login form; its POST asks the trusted API for
// a ticket (client certificate, Xrfkey) and sends the browser back with
// it, as every ticket login module does.
async function startLoginModule(certs) {
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    if (req.method === 'GET') {
      const esc = (s) => String(s || '').replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
      res.setHeader('Content-Type', 'text/html');
      res.end(`<!doctype html><title>login</title><form method="post">
<input type="hidden" name="proxyRestUri" value="${esc(u.searchParams.get('proxyRestUri'))}">
<input type="hidden" name="targetId" value="${esc(u.searchParams.get('targetId'))}">
<input name="directory" value="DOMAIN"><input name="user"><input name="groups">
<button type="submit">Log in</button></form>`);
      return;
    }
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const f = new URLSearchParams(body);
      const xrf = crypto.randomBytes(8).toString('hex');
      const payload = JSON.stringify({
        UserDirectory: f.get('directory'), UserId: f.get('user'), TargetId: f.get('targetId'),
        Attributes: f.get('groups').split(',').filter(Boolean).map((g) => ({ Group: g })),
      });
      const api = https.request(`${f.get('proxyRestUri')}ticket?xrfkey=${xrf}`, {
        method: 'POST', ca: certs.ca, cert: certs.cert, key: certs.key, agent: false,
        headers: { 'X-Qlik-Xrfkey': xrf, 'Content-Type': 'application/json' },
      }, (ar) => {
        let data = '';
        ar.on('data', (d) => { data += d; });
        ar.on('end', () => {
          const t = JSON.parse(data);
          const target = new URL(t.TargetUri);
          target.searchParams.set('qlikTicket', t.Ticket);
          res.writeHead(302, { Location: target.toString() });
          res.end();
        });
      });
      api.on('error', (e) => { res.writeHead(500); res.end(String(e)); });
      api.end(payload);
    });
  });
  await listen(server);
  return { url: `http://127.0.0.1:${server.address().port}/login`, close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }) };
}

async function login(page, user, groups) {
  await page.waitForURL(/\/login\?/);
  await page.fill('input[name=user]', user);
  await page.fill('input[name=groups]', groups);
  await Promise.all([page.waitForNavigation(), page.click('button')]);
}

// watch collects a page's console errors and uncaught exceptions.
function watch(page) {
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  return errors;
}

test('the admin console in a real browser', async (t) => {
  assert.ok(fs.existsSync(chromiumPath), `no browser at ${chromiumPath}: apt-get install chromium (scripts/test.sh does)`);
  fs.mkdirSync(shots, { recursive: true });
  const be = await startBackend();
  t.after(be.close);
  const certsBox = {};
  const lm = await startLoginModule(new Proxy({}, { get: (_, k) => certsBox.certs[k] }));
  t.after(lm.close);
  const o = await start([{ prefix: '', backends: [be.url], authentication_module_redirect_uri: lm.url }],
    'admin: {users: [\'DOMAIN\\admin\']}');
  t.after(o.stop);
  certsBox.certs = o.certs;

  const browser = await chromium.launch({
    executablePath: chromiumPath, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--disable-dev-shm-usage', '--no-first-run'],
  });
  t.after(() => browser.close());
  const newContext = () => browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1100, height: 700 } });

  // The user: logs in, opens a websocket from the hub page.
  const userCtx = await newContext();
  const userPage = await userCtx.newPage();
  await userPage.goto(`${o.front}/hub/`);
  await login(userPage, 'bob', 'Sales');
  assert.match(await userPage.textContent('body'), new RegExp(`backend ${be.token} user=UserDirectory=DOMAIN; UserId=bob`));
  await userPage.evaluate(() => new Promise((resolve, reject) => {
    window.received = [];
    const ws = new WebSocket(`wss://${location.host}/hub/ws`);
    ws.onmessage = (m) => window.received.push(String(m.data));
    ws.onopen = resolve;
    ws.onerror = reject;
  }));

  // A non-admin gets 403 at the console (in another tab: the hub page
  // keeps its websocket open).
  const probe = await userCtx.newPage();
  const denied = await probe.goto(`${o.front}/openqps/sessions`);
  assert.strictEqual(denied.status(), 403);
  assert.match(await probe.textContent('h1'), /403 not an admin/);
  await probe.screenshot({ path: path.join(shots, 'console-403.png') });
  await probe.close();

  // The admin logs in through the virtual proxy's own login.
  const adminCtx = await newContext();
  const admin = await adminCtx.newPage();
  const errors = watch(admin);
  admin.on('dialog', (d) => d.accept());
  await admin.goto(`${o.front}/openqps/`);
  await login(admin, 'admin', '');
  await admin.waitForURL(/\/openqps\/sessions$/);
  assert.strictEqual(await admin.textContent('h1'), 'Sessions');
  await admin.screenshot({ path: path.join(shots, 'console-sessions.png'), fullPage: true });

  // The admin finds bob's session with the filter, and ends it.
  await admin.fill('input[name=user]', 'bob');
  await Promise.all([admin.waitForNavigation(), admin.click('.filters button')]);
  const rows = admin.locator('tbody tr');
  assert.strictEqual(await rows.count(), 1);
  assert.match(await rows.first().textContent(), /DOMAIN\\bob/);
  assert.strictEqual(await rows.first().locator('td.ws').textContent(), '1', 'bob\'s open websocket is counted');
  await admin.screenshot({ path: path.join(shots, 'console-sessions-filtered.png'), fullPage: true });
  await Promise.all([admin.waitForNavigation(), rows.first().locator('button.danger').click()]);
  assert.match(await admin.textContent('.message'), /Ended the session of DOMAIN\\bob in \(default\)/);
  await admin.screenshot({ path: path.join(shots, 'console-ended.png'), fullPage: true });
  assert.match(await admin.textContent('.empty'), /No sessions match the filter/);

  // bob's websocket got QPS's notice; his next navigation goes to login.
  await userPage.waitForFunction(() => window.received.some((m) => m.includes('OnSessionLoggedOut')), null, { timeout: 10000 });
  await userPage.goto(`${o.front}/hub/again`);
  assert.ok(userPage.url().startsWith(lm.url), `after the end, ${userPage.url()} is not the login module`);

  // The other pages, each without console errors.
  await admin.click('nav a[href$="/proxies"]');
  await admin.waitForURL(/\/proxies$/);
  assert.match(await admin.textContent('main'), new RegExp(be.url.replace(/[.]/g, '\\.')));
  assert.match(await admin.textContent('.up'), /up/);
  await admin.screenshot({ path: path.join(shots, 'console-proxies.png'), fullPage: true });
  await admin.click('nav a[href$="/config"]');
  await admin.waitForURL(/\/config$/);
  assert.match(await admin.textContent('pre.config'), /virtual_proxies:/);
  await Promise.all([admin.waitForNavigation(), admin.click('main form button')]);
  assert.match(await admin.textContent('.message'), /Reloaded/);
  await admin.screenshot({ path: path.join(shots, 'console-config.png'), fullPage: true });
  await admin.click('nav a[href$="/events"]');
  await admin.waitForURL(/\/events$/);
  const [, issued, redeemed] = (await admin.textContent('.counts')).match(/(\d+) tickets issued, (\d+) redeemed/);
  assert.ok(Number(issued) >= 2 && Number(redeemed) >= 2, `two logins: ${issued} issued, ${redeemed} redeemed`);
  assert.ok((await admin.locator('tbody tr', { hasText: 'ticket.redeemed' }).count()) >= 2, 'both logins are listed as redeemed tickets');
  await admin.screenshot({ path: path.join(shots, 'console-events.png'), fullPage: true });
  await admin.click('.tabs a[href$="kind=failures"]');
  await admin.waitForURL(/kind=failures$/);
  assert.ok((await admin.locator('tbody tr', { hasText: 'console.refused' }).count()) >= 1, "bob's 403 is listed");
  await admin.screenshot({ path: path.join(shots, 'console-events-failures.png'), fullPage: true });
  // Keyboard only: the first tab stop is the console's own link.
  await admin.keyboard.press('Tab');
  assert.strictEqual(await admin.evaluate(() => document.activeElement.textContent), 'openqps console');
  assert.deepStrictEqual(errors, []);
  // Nothing of the console reached the back end.
  assert.deepStrictEqual(be.seen.filter((r) => /openqps/i.test(r.url)), []);
});
