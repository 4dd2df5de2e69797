'use strict';
// Tokens as Qlik's JWT examples make them, with the npm package
// jsonwebtoken, verified by openqps: a browser request and an enigma.js
// style websocket with Authorization: Bearer, and the refusals.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const jwt = require('jsonwebtoken');
const WebSocket = require('ws');
const { start, startBackend, Browser } = require('./lib/openqps');

const audience = 'qlik.api/login/jwt-session';
let backend, openqps, keys, dir;

before(async () => {
  backend = await startBackend();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'openqps-interop-jwt-'));
  keys = {
    rsa: crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }),
    ec: crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }),
  };
  const pem = (k, name) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, k.publicKey.export({ type: 'spki', format: 'pem' }));
    return file;
  };
  const jwtConfig = (file) => ({ public_key: file, attribute_claims: { groups: 'Group' }, audience });
  openqps = await start([
    { prefix: 'jwtrsa', authentication_method: 'jwt', jwt: jwtConfig(pem(keys.rsa, 'rsa.pem')), backends: [backend.url] },
    { prefix: 'jwtec', authentication_method: 'jwt', jwt: jwtConfig(pem(keys.ec, 'ec.pem')), backends: [backend.url] },
  ]);
});

after(async () => {
  await openqps?.stop();
  await backend?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function token(key, algorithm, claims = {}, options = {}) {
  return jwt.sign({ userId: 'grace', userDirectory: 'ACME', groups: ['Sales', 'EU'], ...claims },
    key.privateKey, { algorithm, expiresIn: '1h', audience, ...options });
}

for (const [vp, key, algorithm] of [['jwtrsa', 'rsa', 'RS256'], ['jwtrsa', 'rsa', 'RS512'], ['jwtec', 'ec', 'ES256']]) {
  test(`jsonwebtoken ${algorithm}: the bearer token logs the browser in, the cookie then suffices`, async () => {
    const browser = new Browser(openqps.certs.ca);
    const res = await browser.request(`${openqps.front}/${vp}/hub/`, { headers: { Authorization: `Bearer ${token(keys[key], algorithm)}` } });
    assert.equal(res.status, 200, res.body);
    assert.equal(res.body, `backend ${backend.token} user=UserDirectory=ACME; UserId=grace url=/hub/`);
    assert.match(backend.seen.at(-1).headers['x-qlik-security'], /Group=Sales; Group=EU;/);
    const again = await browser.request(`${openqps.front}/${vp}/hub/x`);
    assert.equal(again.body, `backend ${backend.token} user=UserDirectory=ACME; UserId=grace url=/hub/x`);
  });
}

test('enigma.js JWT style: a websocket upgrade with Authorization: Bearer', async () => {
  const ws = new WebSocket(`${openqps.front.replace('https:', 'wss:')}/jwtrsa/app/engineData`, {
    ca: openqps.certs.ca,
    headers: { Authorization: `Bearer ${token(keys.rsa, 'RS256', { userId: 'heidi' })}` },
  });
  const greeting = await new Promise((resolve, reject) => {
    ws.once('message', (m) => resolve(m.toString()));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`handshake refused: ${res.statusCode}`)));
    ws.once('error', reject);
  });
  ws.close();
  assert.equal(greeting, `hello ${backend.token} user=UserDirectory=ACME; UserId=heidi url=/app/engineData`);
});

test('jsonwebtoken: refused tokens say why', async () => {
  const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const cases = [
    [token(keys.rsa, 'RS256', {}, { expiresIn: -10 }), 'expired'],
    [token(keys.rsa, 'RS256', {}, { audience: 'someone.else' }), 'wrong audience'],
    [token(other, 'RS256'), 'unknown key'],
    [token(keys.rsa, 'RS256', { userId: undefined }), 'no \\"userId\\" claim'],
    [jwt.sign({ userId: 'grace', userDirectory: 'ACME' }, 'secret', { algorithm: 'HS256', expiresIn: '1h', audience }), 'not accepted'],
  ];
  for (const [t, reason] of cases) {
    const res = await new Browser(openqps.certs.ca).request(`${openqps.front}/jwtrsa/hub/`, { headers: { Authorization: `Bearer ${t}` } });
    assert.equal(res.status, 401, `${reason}: ${res.body}`);
    assert.ok(res.body.includes(reason), `want ${reason} in ${res.body}`);
  }
});
