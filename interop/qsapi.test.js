'use strict';
// The Python client qsAPI (rafael-sanz), when it is installed: it reads
// the default virtual proxy's sessions and users. It is not on this
// machine's package index mirror, so the test skips with a message when
// `python3 -c "import qsAPI"` fails.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');
const path = require('node:path');
const qlikApiQps = require('qlik-api-qps');
const { start, startBackend } = require('./lib/openqps');

function qsapiAvailable() {
  try {
    execFileSync('python3', ['-c', 'import qsAPI, requests'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const available = qsapiAvailable();
let backend, openqps;

before(async () => {
  if (!available) return;
  backend = await startBackend();
  openqps = await start([{ prefix: '', authentication_module_redirect_uri: 'https://login.example.test/login', backends: [backend.url] }]);
});

after(async () => {
  await openqps?.stop();
  await backend?.close();
});

test('qsAPI: GetUser and GetSession on the default virtual proxy', {
  skip: !available && 'qsAPI is not installed (pip install qsAPI, with python3-requests; Python < 3.12)',
}, async () => {
  const id = crypto.randomUUID();
  const qps = qlikApiQps({ qpsRestUri: `${openqps.api}/qps`, ca: openqps.certs.ca, cert: openqps.certs.cert, key: openqps.certs.key });
  await qps.session.post({ UserDirectory: 'ACME', UserId: 'frank', Attributes: [], SessionId: id });
  const script = `
import json, sys, qsAPI
qps = qsAPI.QPS(proxy='127.0.0.1', port=${openqps.apiPort}, certificate=${JSON.stringify(path.join(openqps.certs.dir, 'client.pem'))}, verify=False)
print(json.dumps({"user": [x['SessionId'] for x in qps.GetUser('ACME', 'frank').json()],
                  "session": qps.GetSession(${JSON.stringify(id)}).json()['UserId']}))
`;
  const out = JSON.parse(execFileSync('python3', ['-c', script], { encoding: 'utf8' }));
  assert.deepEqual(out, { user: [id], session: 'frank' });
});
