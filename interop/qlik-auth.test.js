'use strict';
// A login module written the way users write one, on express + qlik-auth,
// unchanged: openqps sends the browser to it, it asks for a ticket with
// the TargetId, sends the browser back, and the back end sees the user.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const qlikAuth = require('qlik-auth');
const { start, startBackend, listen, Browser } = require('./lib/openqps');

let backend, openqps, module_;

before(async () => {
  backend = await startBackend();
  const app = express();
  app.get('/login', (req, res) => {
    // A new options object per request: qlik-auth writes into it.
    qlikAuth.requestTicket(req, res,
      { UserDirectory: 'ACME', UserId: 'alice', Attributes: [{ Group: 'Sales' }, { Group: 'EU' }] },
      { Certificate: openqps.certs.clientPem, CertificateKey: openqps.certs.clientKeyPem });
  });
  module_ = await new Promise((resolve) => { const s = app.listen(0, '127.0.0.1', () => resolve(s)); });
  openqps = await start([{
    prefix: 'interop',
    authentication_module_redirect_uri: `http://127.0.0.1:${module_.address().port}/login`,
    backends: [backend.url],
  }]);
});

after(async () => {
  await openqps?.stop();
  module_?.closeAllConnections();
  module_?.close();
  await backend?.close();
});

test('qlik-auth login module: browser -> module -> ticket -> back end sees the user', async () => {
  const browser = new Browser(openqps.certs.ca);
  const start = `${openqps.front}/interop/hub/sheet?id=1&x=a%20b`;
  const res = await browser.get(start);
  assert.equal(res.status, 200, res.body);
  assert.equal(res.body, `backend ${backend.token} user=UserDirectory=ACME; UserId=alice url=/hub/sheet?id=1&x=a%20b`);
  // front end -> login module -> front end with QlikTicket -> front end without it
  assert.equal(res.visited.length, 4, res.visited.join('\n'));
  assert.match(res.visited[1], /^http:\/\/127\.0\.0\.1:\d+\/login\?proxyRestUri=.+&targetId=/);
  assert.equal(new URL(res.visited[1]).searchParams.get('proxyRestUri'), `${openqps.api}/qps/interop/`);
  assert.match(res.visited[2], /^https:\/\/127\.0\.0\.1:\d+\/interop\/hub\/sheet\?id=1&x=a%20b&QlikTicket=[A-Za-z0-9_-]{16,}$/);
  assert.equal(res.visited[3], start);
  const security = backend.seen.at(-1).headers['x-qlik-security'];
  assert.match(security, /Group=Sales; Group=EU;/);

  // The cookie now works on its own, without another trip to the module.
  const again = await browser.request(`${openqps.front}/interop/hub/other`);
  assert.equal(again.status, 200);
  assert.equal(again.body, `backend ${backend.token} user=UserDirectory=ACME; UserId=alice url=/hub/other`);

  // A browser without the cookie is sent to the module again.
  const stranger = await new Browser(openqps.certs.ca).request(`${openqps.front}/interop/hub/other`);
  assert.equal(stranger.status, 302);
});
