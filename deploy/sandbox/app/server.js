// Custom Next.js server with a WebSocket chat on /ws (chat-server.js), started by `npm run start` / `npm run dev`;
// plus the sandbox's switches that break the app the way real apps break (below).
'use strict';

const next = require('next');
const { serve } = require('./chat-server');

const port = parseInt(process.env.PORT || '3000', 10);
const hostname = process.env.HOSTNAME || '127.0.0.1';
const dev = process.env.NODE_ENV !== 'production';

const app = next({ dev, hostname, port, dir: __dirname });

serve(app, {
  hostname,
  port,
  label: dev ? 'development' : 'production',
  onListening: () => {
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
  },
});
