'use strict';
// sockjs-node 0.3.24 (the reference SockJS server) with the benchmark's two endpoints:
//   /echo       every message is sent back to its session
//   /broadcast  every message is sent to every open session
// Usage: node sockjs_node_server.js --host 127.0.0.1 --port 8081
// The sockjs package comes from the bench-local node environment (NODE_PATH).
const http = require('http');
const sockjs = require('sockjs');

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
}
const host = arg('--host', '127.0.0.1');
const port = Number(arg('--port', '8081'));

// The same settings every server in the benchmark runs with.
const options = {
  heartbeat_delay: 25000,
  disconnect_delay: 5000,
  response_limit: 128 * 1024,
  jsessionid: false,
  websocket: true,
  log: () => {},
};

const echo = sockjs.createServer(options);
echo.on('connection', (conn) => {
  conn.on('data', (message) => conn.write(message));
});

const broadcast = sockjs.createServer(options);
const members = new Set();
broadcast.on('connection', (conn) => {
  members.add(conn);
  conn.on('data', (message) => {
    for (const member of members) member.write(message);
  });
  conn.on('close', () => members.delete(conn));
});

const server = http.createServer();
echo.installHandlers(server, { prefix: '/echo' });
broadcast.installHandlers(server, { prefix: '/broadcast' });
server.listen(port, host);
process.on('SIGTERM', () => process.exit(0));
