// Custom Next.js server with a WebSocket chat on /ws, shaped like a typical "Next + ws" SaaS app.
//
// Failure behaviour matters here (the wscheck sandbox relies on it): when Next cannot prepare (for example a
// production start without .next/BUILD_ID) or the port is taken, print one clear line to stderr and exit 1,
// so PM2 counts an unstable restart and ends in `errored`, exactly like the seed story.
'use strict';

const http = require('http');
const { parse } = require('url');
const next = require('next');
const { WebSocketServer, WebSocket } = require('ws');

const port = parseInt(process.env.PORT || '3000', 10);
const hostname = process.env.HOSTNAME || '127.0.0.1';
const dev = process.env.NODE_ENV !== 'production';

const app = next({ dev, hostname, port, dir: __dirname });

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
      process.stdout.write(
        `[kathario-saas] ready on http://${hostname}:${port} (${dev ? 'development' : 'production'}), chat on /ws\n`,
      );
      // wscheck sandbox "app-hung": a blocked event loop, the way a hung app really looks (PM2 `online`, the
      // port accepting in the kernel's backlog, no answer). Atomics.wait blocks the thread without burning CPU.
      if (process.env.WSCHECK_APP_HANG === '1') {
        setImmediate(() => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0));
      }
      // wscheck sandbox "kernel-oom": with WSCHECK_APP_OOM=1, SIGUSR2 makes the app allocate (zero-filled Buffers,
      // outside V8's heap, so the kernel and not V8 stops it) until the kernel's OOM killer kills it. One shot: the
      // sandbox sends the signal once, to a process it has put in a small memory cgroup; PM2's restart does not hog.
      if (process.env.WSCHECK_APP_OOM === '1') {
        process.on('SIGUSR2', () => {
          const hog = [];
          for (;;) {
            hog.push(Buffer.alloc(8 * 1024 * 1024, 1));
          }
        });
      }
      // wscheck sandbox "fd-exhausted": a leak of open files under a low `ulimit -n`. Opens until EMFILE, says so
      // as a real app does, and keeps them: from then on node closes each new connection at once.
      if (process.env.WSCHECK_APP_FD_LEAK === '1') {
        const fs = require('fs');
        const leaked = [];
        setImmediate(() => {
          for (;;) {
            try {
              leaked.push(fs.openSync(__filename, 'r'));
            } catch (err) {
              process.stderr.write(`[kathario-saas] cannot open ${__filename} (${leaked.length} open): ${err.message}\n`);
              break;
            }
          }
        });
      }
    });
  })
  .catch((err) => fail('Next.js failed to start', err));
