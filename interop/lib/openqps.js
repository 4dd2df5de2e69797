'use strict';
// Test harness of the interoperability suite: builds and runs a real
// openqps (real TLS, ports picked free on 127.0.0.1), a recording back end
// with a websocket endpoint, and a "browser" that keeps cookies and
// follows redirects. Every back-end answer carries a random token made
// for this run, so a test can tell the answer really came through.

const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const { WebSocketServer } = require('ws');

const repo = path.resolve(__dirname, '..', '..');

let binary;

// build compiles openqps once per test process.
function build() {
  if (!binary) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'openqps-interop-bin-'));
    binary = path.join(dir, 'openqps');
    execFileSync('go', ['build', '-o', binary, './cmd/openqps'], { cwd: repo, stdio: 'inherit' });
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  }
  return binary;
}

// startBackend runs the back end: HTTP answers "backend <token> user=<X-Qlik-User>
// url=<path?query>", and a websocket greets with "hello <token> user=<...> url=<...>"
// and echoes "<token>:<message>".
async function startBackend() {
  const token = crypto.randomBytes(8).toString('hex');
  const seen = [];
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url, headers: req.headers });
    res.setHeader('Content-Type', 'text/plain');
    res.end(`backend ${token} user=${req.headers['x-qlik-user']} url=${req.url}`);
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req) => {
    seen.push({ url: req.url, headers: req.headers, websocket: true });
    ws.send(`hello ${token} user=${req.headers['x-qlik-user']} url=${req.url}`);
    ws.on('message', (m) => ws.send(`${token}:${m}`));
  });
  await listen(server);
  return {
    token,
    seen,
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((resolve) => { wss.close(); server.closeAllConnections(); server.close(resolve); }),
  };
}

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
}

// start runs openqps with the given virtual proxies (objects written as
// YAML flow mappings) in front of backend. It resolves once both listeners
// are up, with their URLs and the paths of the generated certificates.
// extra, when given, is more top-level YAML (e.g. an admin section).
async function start(virtualProxies, extra = '') {
  const bin = build();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'openqps-interop-'));
  const vps = virtualProxies.map((vp) => '  - ' + JSON.stringify(vp)).join('\n');
  const configFile = path.join(dir, 'openqps.yaml');
  fs.writeFileSync(configFile, `data_dir: ${JSON.stringify(dir)}
frontend: {listen: "127.0.0.1:0"}
api: {listen: "127.0.0.1:0"}
store: {type: memory}
log: {level: info, format: json}
${extra}
virtual_proxies:
${vps}
`);
  const child = spawn(bin, ['serve', '--config', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  // Never leave an openqps behind, also when a test crashes.
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  const log = [];
  const started = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('openqps did not start within 30s:\n' + log.join('\n'))), 30000);
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`openqps exited with ${code}:\n${log.join('\n')}`)); });
    readline.createInterface({ input: child.stderr }).on('line', (line) => {
      log.push(line);
      let entry;
      try { entry = JSON.parse(line); } catch { return; }
      if (entry.msg === 'openqps started') {
        clearTimeout(timer);
        resolve(entry);
      }
    });
  });
  const entry = await started;
  const certDir = path.join(dir, 'certs');
  return {
    front: entry.frontend,
    api: entry.api,
    apiPort: Number(new URL(entry.api).port),
    log,
    configFile,
    certs: {
      dir: certDir,
      ca: fs.readFileSync(path.join(certDir, 'root.pem')),
      cert: fs.readFileSync(path.join(certDir, 'client.pem')),
      key: fs.readFileSync(path.join(certDir, 'client_key.pem')),
      clientPem: path.join(certDir, 'client.pem'),
      clientKeyPem: path.join(certDir, 'client_key.pem'),
      clientPfx: path.join(certDir, 'client.pfx'),
    },
    stop: () => new Promise((resolve) => {
      child.removeAllListeners('exit');
      process.removeListener('exit', kill);
      child.once('exit', () => { fs.rmSync(dir, { recursive: true, force: true }); resolve(); });
      child.kill('SIGTERM');
    }),
  };
}

// Browser is a client with a cookie jar (cookies per host name, as
// browsers keep them) that trusts openqps's CA and follows redirects.
class Browser {
  constructor(ca) {
    this.ca = ca;
    this.cookies = new Map(); // name -> value, for 127.0.0.1
  }

  cookieHeader() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  // request sends one request, without following redirects.
  request(url, { method = 'GET', headers = {}, body } = {}) {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    const h = { ...headers };
    if (this.cookies.size) h.Cookie = this.cookieHeader();
    return new Promise((resolve, reject) => {
      const req = mod.request(u, { method, headers: h, ca: this.ca, agent: false }, (res) => {
        for (const c of res.headers['set-cookie'] || []) {
          const [pair, ...attrs] = c.split(';');
          const [name, value] = pair.trim().split('=');
          if (value === '' || attrs.some((a) => /^\s*max-age=(0|-)/i.test(a))) this.cookies.delete(name);
          else this.cookies.set(name, value);
        }
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d) => { data += d; });
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data, url }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  // get follows redirects (at most 10) and returns the last answer with
  // the list of URLs visited.
  async get(url, options) {
    const visited = [];
    for (let i = 0; i < 10; i++) {
      visited.push(url);
      const res = await this.request(url, options);
      if (res.status < 300 || res.status >= 400 || !res.headers.location) return { ...res, visited };
      url = new URL(res.headers.location, url).toString();
    }
    throw new Error('too many redirects: ' + visited.join(' -> '));
  }
}

module.exports = { start, startBackend, listen, Browser };
