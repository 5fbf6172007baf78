// The Socket.IO variant of the sandbox chat (wscheck sandbox modes `socketio` and `socketio-cluster`).
//
// Socket.IO is the most common chat stack on Node; its WebSocket lives at /socket.io/?EIO=4&transport=websocket
// with an Engine.IO heartbeat on top, and behind PM2 cluster mode without sticky sessions its polling handshakes
// fail with 400 "Session ID unknown". Plain node http + socket.io (no Next.js) so that PM2 can run it in cluster
// mode directly (cluster mode needs a node script, not `npm`). The heartbeat is configurable so that a test can
// watch several Engine.IO ping rounds in seconds: SIO_PING_INTERVAL / SIO_PING_TIMEOUT, in ms.
'use strict';

const http = require('http');
const { Server } = require('socket.io');

const port = parseInt(process.env.PORT || '3000', 10);
const hostname = process.env.HOSTNAME || '127.0.0.1';
const pingInterval = parseInt(process.env.SIO_PING_INTERVAL || '25000', 10);
const pingTimeout = parseInt(process.env.SIO_PING_TIMEOUT || '20000', 10);

const server = http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(`kathario-saas socket.io chat (pid ${process.pid})\n`);
});

const io = new Server(server, { pingInterval, pingTimeout });
io.on('connection', (socket) => {
  socket.emit('welcome', 'hello');
  socket.on('chat', (text) => io.emit('chat', text));
});

server.on('error', (err) => {
  process.stderr.write(`[kathario-saas] cannot listen on ${hostname}:${port}: ${err.message}\n`);
  process.exit(1);
});
server.listen(port, hostname, () => {
  process.stdout.write(
    `[kathario-saas] socket.io ready on http://${hostname}:${port} (pid ${process.pid}, ping ${pingInterval} ms)\n`,
  );
});
