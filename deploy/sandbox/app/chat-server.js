// The HTTP server and the /ws chat of the sandbox app, shared by server.js (`next start` layout) and
// standalone-server.js (an `output: "standalone"` deployment): one Next app, its request and upgrade handlers,
// and a broadcast chat on /ws, shaped like a typical "Next + ws" SaaS app.
//
// Failure behaviour matters here (the wscheck sandbox relies on it): when Next cannot prepare (for example a
// production start without .next/BUILD_ID) or the port is taken, print one clear line to stderr and exit 1,
// so PM2 counts an unstable restart and ends in `errored`, exactly like the seed story.
'use strict';

const http = require('http');
const { parse } = require('url');
const { WebSocketServer, WebSocket } = require('ws');

function fail(what, err) {
  const message = err && err.message ? err.message : String(err);
  process.stderr.write(`[kathario-saas] ${what}: ${message}\n`);
  process.exit(1);
}

// Prepare `app`, serve it and the chat on hostname:port, say "ready ... (label)", then call onListening().
function serve(app, { hostname, port, label, onListening }) {
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
        process.stdout.write(`[kathario-saas] ready on http://${hostname}:${port} (${label}), chat on /ws\n`);
        if (onListening) {
          onListening();
        }
      });
    })
    .catch((err) => fail('Next.js failed to start', err));
}

module.exports = { serve };
