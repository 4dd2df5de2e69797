'use strict';
// qlik-session-auth, unchanged (installed with an npm override for its two
// placeholder dependencies), as a Session-API login module: it adds a
// session with its own id and PFX certificate, the module sets the cookie,
// and the browser reaches the back end as that user. Its response check is
// strict: one line, keys in QPS's order, Attributes present.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const QlikSession = require('qlik-session-auth');
const { start, startBackend, Browser } = require('./lib/openqps');

let backend, openqps;

before(async () => {
  backend = await startBackend();
  openqps = await start([{
    prefix: 'interop',
    authentication_module_redirect_uri: 'https://login.example.test/login',
    backends: [backend.url],
  }]);
});

after(async () => {
  await openqps?.stop();
  await backend?.close();
});

test('qlik-session-auth: add, use, get and delete a session', async () => {
  const sessionId = crypto.randomUUID();
  const qs = new QlikSession(
    { host: '127.0.0.1', port: openqps.apiPort, prefix: 'interop', xrfkey: 'abcdefghijklmnop', pfx: openqps.certs.clientPfx, passphrase: '' },
    { userDirectory: 'ACME', userId: 'carol', sessionId });
  const added = await qs.addSession();
  assert.deepEqual(added, { UserDirectory: 'ACME', UserId: 'carol', Attributes: [], SessionId: sessionId });

  const browser = new Browser(openqps.certs.ca);
  browser.cookies.set('X-Qlik-Session-interop', sessionId);
  const res = await browser.request(`${openqps.front}/interop/hub/`);
  assert.equal(res.status, 200);
  assert.equal(res.body, `backend ${backend.token} user=UserDirectory=ACME; UserId=carol url=/hub/`);

  assert.equal((await qs.getSession()).SessionId, sessionId);
  assert.equal((await qs.deleteSession()).SessionId, sessionId);
  assert.equal((await browser.request(`${openqps.front}/interop/hub/`)).status, 302, 'a deleted session must not reach the back end');
});
