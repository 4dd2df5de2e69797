'use strict';
// The trusted API's OpenAPI document passes a real linter (Redocly CLI,
// recommended rules with warnings as errors: redocly.yaml). The Go
// end-to-end tests validate every trusted-API answer against the same
// document (e2e/openapi_test.go); here a real openqps serves it.

const test = require('node:test');
const assert = require('node:assert');
const { execFileSync } = require('node:child_process');
const https = require('node:https');
const fs = require('node:fs');
const path = require('node:path');
const { start, startBackend } = require('./lib/openqps');

const doc = path.join(__dirname, '..', 'internal', 'qpsapi', 'openapi.yaml');

test('redocly lint passes the OpenAPI document', () => {
  const out = execFileSync(path.join(__dirname, 'node_modules', '.bin', 'redocly'),
    ['lint', '--config', path.join(__dirname, 'redocly.yaml'), '--format', 'summary', doc],
    { env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  assert.doesNotMatch(out, /error|warning/i);
});

test('the API listener serves the document, behind the client certificate', async (t) => {
  const be = await startBackend();
  t.after(be.close);
  const o = await start([{ prefix: '', backends: [be.url], authentication_module_redirect_uri: 'https://login.example.test/' }]);
  t.after(o.stop);
  const fetch = (opts) => new Promise((resolve, reject) => {
    https.get(`${o.api}/openqps/openapi.yaml`, { ca: o.certs.ca, agent: false, ...opts }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'], body }));
    }).on('error', reject);
  });
  const res = await fetch({ cert: o.certs.cert, key: o.certs.key });
  assert.strictEqual(res.status, 200);
  assert.strictEqual(res.type, 'application/yaml');
  assert.strictEqual(res.body, fs.readFileSync(doc, 'utf8'));
  await assert.rejects(fetch({}), 'no client certificate: refused at the handshake');
});
