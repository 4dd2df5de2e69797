'use strict';
// qlik-api-qps (on qlik-request), unchanged, in the qpsRestUri + ca/cert/key
// form its own tests use: it verifies openqps's certificate against the
// CA (rejectUnauthorized defaults to true), so the server certificate must
// name 127.0.0.1.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const qlikApiQps = require('qlik-api-qps');
const { start, startBackend, Browser } = require('./lib/openqps');

let backend, openqps, qps;

before(async () => {
  backend = await startBackend();
  openqps = await start([{
    prefix: 'interop',
    authentication_module_redirect_uri: 'https://login.example.test/login',
    backends: [backend.url],
  }]);
  qps = qlikApiQps({
    qpsRestUri: `${openqps.api}/qps/interop`,
    ca: openqps.certs.ca, cert: openqps.certs.cert, key: openqps.certs.key,
  });
});

after(async () => {
  await openqps?.stop();
  await backend?.close();
});

test('qlik-api-qps: ticket, then the browser redeems it', async () => {
  const t = await qps.ticket.post({ UserDirectory: 'ACME', UserId: 'alice', Attributes: [{ Group: 'Sales' }] });
  assert.equal(t.UserDirectory, 'ACME');
  assert.equal(t.UserId, 'alice');
  assert.match(t.Ticket, /^[A-Za-z0-9_-]{16,}$/);
  const browser = new Browser(openqps.certs.ca);
  const res = await browser.get(`${openqps.front}/interop/hub/?qlikTicket=${t.Ticket}`);
  assert.equal(res.body, `backend ${backend.token} user=UserDirectory=ACME; UserId=alice url=/hub/`);

  // The redeemed session is listed by the user API and ended by it.
  const sessions = await qps.user.get('ACME', 'alice');
  assert.equal(sessions.length, 1);
  assert.equal(sessions[0].SessionId, browser.cookies.get('X-Qlik-Session-interop'));
  const ended = await qps.user.delete('acme', 'ALICE');
  assert.deepEqual(ended.map((s) => s.SessionId), [sessions[0].SessionId]);
  const after = await browser.request(`${openqps.front}/interop/hub/`);
  assert.equal(after.status, 302, 'a logged-out cookie must not reach the back end');
  assert.match(after.headers.location, /^https:\/\/login\.example\.test\/login\?/);

  // Single use: the same ticket again is refused.
  const replay = await new Browser(openqps.certs.ca).request(`${openqps.front}/interop/hub/?qlikTicket=${t.Ticket}`);
  assert.equal(replay.status, 302);
  assert.match(replay.headers.location, /^https:\/\/login\.example\.test\/login\?/);
});

test('qlik-api-qps: session add, get, delete', async () => {
  const id = crypto.randomUUID();
  const added = await qps.session.post({ UserDirectory: 'ACME', UserId: 'bob', Attributes: [], SessionId: id });
  assert.deepEqual(added, { UserDirectory: 'ACME', UserId: 'bob', Attributes: [], SessionId: id });
  assert.deepEqual(await qps.session.get(id), added);
  assert.deepEqual((await qps.user.get('ACME', 'bob')).map((s) => s.SessionId), [id]);

  const browser = new Browser(openqps.certs.ca);
  browser.cookies.set('X-Qlik-Session-interop', id);
  const res = await browser.request(`${openqps.front}/interop/hub/x`);
  assert.equal(res.body, `backend ${backend.token} user=UserDirectory=ACME; UserId=bob url=/hub/x`);

  assert.deepEqual(await qps.session.delete(id), added);
  assert.equal(await qps.session.get(id), null, 'a deleted session is null, as QPS answers');
  assert.equal((await browser.request(`${openqps.front}/interop/hub/x`)).status, 302);
});

test('qlik-api-qps: bad input is rejected with a reason', async () => {
  await assert.rejects(qps.ticket.post({ UserDirectory: 'ACME', UserId: '' }),
    { error: 'invalid user', detail: 'UserId is missing or blank' });
  await assert.rejects(qps.ticket.post({ UserDirectory: 'ACME', UserId: 'x', TargetId: 'no-such-target' }),
    (e) => e.error === 'unknown TargetId' && e.detail.includes('"no-such-target"'));
});
