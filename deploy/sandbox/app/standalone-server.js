// The custom server of a standalone deployment (wscheck sandbox "static-missing"): copied over the generated
// `.next/standalone/server.js`, as apps with a WebSocket next to Next.js deploy `output: "standalone"`. It starts Next
// from the traced standalone files with the build's own config (`.next/required-server-files.json`, what the
// generated server.js does) and serves the same chat on /ws (chat-server.js, copied next to it). `ws` is copied
// into the standalone node_modules (tracing does not see it: it is not required by any page).
'use strict';

process.env.NODE_ENV = 'production';
process.chdir(__dirname);

const { config } = require('./.next/required-server-files.json');

process.env.__NEXT_PRIVATE_STANDALONE_CONFIG = JSON.stringify(config);

const next = require('next');
const { serve } = require('./chat-server');

const port = parseInt(process.env.PORT || '3000', 10);
const hostname = process.env.HOSTNAME || '127.0.0.1';

const app = next({ dev: false, hostname, port, dir: __dirname, conf: config });

serve(app, { hostname, port, label: 'standalone' });
