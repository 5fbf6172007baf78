// The custom server of a standalone deployment (wscheck sandbox "static-missing"): copied over the generated
// `.next/standalone/server.js`, as apps with a WebSocket next to Next.js deploy `output: "standalone"`. It starts Next
// from the traced standalone files with the build's own config (`.next/required-server-files.json`, what the
// generated server.js does) and serves the same chat on /ws as ../server.js. `ws` is copied into the standalone
// node_modules (tracing does not see it: it is not required by any page).
'use strict';

process.env.NODE_ENV = 'production';
process.chdir(__dirname);

const http = require('http');
const { parse } = require('url');
const { config } = require('./.next/required-server-files.json');

process.env.__NEXT_PRIVATE_STANDALONE_CONFIG = JSON.stringify(config);

const next = require('next');
const { WebSocketServer, WebSocket } = require('ws');

const port = parseInt(process.env.PORT || '3000', 10);
const hostname = process.env.HOSTNAME || '127.0.0.1';

const app = next({ dev: false, hostname, port, dir: __dirname, conf: config });

function fail(what, err) {
  const message = err && err.message ? err.message : String(err);
  process.stderr.write(`[kathario-saas] ${what}: ${message}\n`);
  process.exit(1);
}

app
  .prepare()
  .then(() => {
    const handle = app.getRequestHandler();
    const upgradeNext = app.getUpgradeHandler();
    const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });

    wss.on('connection', (socket) => {
      socket.send('welcome');
      socket.on('message', (data, isBinary) => {
        for (const client of wss.clients) {
          if (client.readyState === WebSocket.OPEN) {
            client.send(data, { binary: isBinary });
          }
        }
      });
    });

    const server = http.createServer((req, res) => {
      handle(req, res, parse(req.url, true)).catch((err) => {
        process.stderr.write(`[kathario-saas] request error: ${err && err.stack ? err.stack : err}\n`);
        if (!res.headersSent) {
          res.statusCode = 500;
        }
        res.end('internal error');
      });
    });

    server.on('upgrade', (req, socket, head) => {
      const { pathname } = parse(req.url);
      if (pathname === '/ws') {
        wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
      } else {
        upgradeNext(req, socket, head);
      }
    });

    server.on('error', (err) => fail(`cannot listen on ${hostname}:${port}`, err));

    server.listen(port, hostname, () => {
      process.stdout.write(`[kathario-saas] ready on http://${hostname}:${port} (standalone), chat on /ws\n`);
    });
  })
  .catch((err) => fail('Next.js failed to start', err));
