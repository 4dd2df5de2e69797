'use strict';
// Qlik's enigma.js example "sense-using-ticket", its requests as written:
// a ticket from the trusted API with the fixed Xrfkey abcdefghijklmnop, an
// empty TargetId and a Content-Length body (axios), server certificate
// verified against root.pem; then a websocket to /app/engineData with
// ?QlikTicket=, which openqps must authenticate in place and tunnel.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const https = require('node:https');
const WebSocket = require('ws');
const { start, startBackend } = require('./lib/openqps');

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

function getTicket(userId) {
  const body = JSON.stringify({ UserDirectory: 'ACME', UserId: userId, Attributes: [], TargetId: '' });
  return new Promise((resolve, reject) => {
    const req = https.request(`${openqps.api}/qps/interop/ticket?xrfkey=abcdefghijklmnop`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Qlik-Xrfkey': 'abcdefghijklmnop', 'Content-Length': Buffer.byteLength(body) },
      ca: [openqps.certs.ca], cert: openqps.certs.cert, key: openqps.certs.key,
    }, (res) => {
      let data = '';
      res.on('data', (d) => { data += d; });
      res.on('end', () => (res.statusCode === 201 ? resolve(JSON.parse(data)) : reject(new Error(`${res.statusCode} ${data}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

// open connects as the example does and resolves with the first message,
// or rejects with the HTTP status of a refused handshake.
function open(ticket) {
  const ws = new WebSocket(`${openqps.front.replace('https:', 'wss:')}/interop/app/engineData?QlikTicket=${ticket}`, {
    ca: openqps.certs.ca,
    headers: { 'X-Qlik-User': 'UserDirectory=ACME; UserId=someone-else' },
  });
  return new Promise((resolve, reject) => {
    ws.once('message', (m) => resolve({ ws, greeting: m.toString() }));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`handshake refused: ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

test('enigma.js ticket example: websocket with QlikTicket is authenticated in place', async () => {
  const t = await getTicket('dave');
  assert.equal(t.TargetUri, null);
  const { ws, greeting } = await open(t.Ticket);
  try {
    // The back end sees the ticket's user, not the client's X-Qlik-User,
    // and no ticket in the URL.
    assert.equal(greeting, `hello ${backend.token} user=UserDirectory=ACME; UserId=dave url=/app/engineData`);
    const echo = new Promise((resolve) => ws.once('message', (m) => resolve(m.toString())));
    ws.send('{"method":"GetDocList","handle":-1,"params":[],"id":1}');
    assert.equal(await echo, `${backend.token}:{"method":"GetDocList","handle":-1,"params":[],"id":1}`);
  } finally {
    ws.close();
  }
  // The same key again (the example never changes it) works, and a
  // replayed ticket is refused at the handshake.
  assert.match((await getTicket('erin')).Ticket, /^[A-Za-z0-9_-]{16,}$/);
  await assert.rejects(open(t.Ticket), /handshake refused: 401/);
});
