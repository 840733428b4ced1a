'use strict';
// sockjs-node 0.3.24 (the reference SockJS server) with the benchmark's two endpoints:
//   /echo       every message is sent back to its session
//   /broadcast  every message is sent to every open session
//   /stomp      a minimal STOMP topic fan-out (see below)
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

// /stomp: a minimal STOMP topic fan-out written for the benchmark (CONNECT, SUBSCRIBE,
// UNSUBSCRIBE, SEND, DISCONNECT, receipts; no header escaping, acks or transactions):
// the least a STOMP broker on sockjs-node has to do per message.
const stomp = sockjs.createServer(options);
const topics = new Map(); // destination -> Map(conn -> subscription id)
let messageId = 0;
stomp.on('connection', (conn) => {
  const subscriptions = new Map(); // id -> destination
  conn.on('data', (data) => {
    for (const raw of data.split('\0')) {
      const frame = raw.replace(/^[\r\n]+/, '');
      if (!frame) continue;
      const split = frame.indexOf('\n\n');
      const head = split < 0 ? frame : frame.slice(0, split);
      const body = split < 0 ? '' : frame.slice(split + 2);
      const lines = head.split('\n');
      const command = lines[0];
      const headers = {};
      for (let i = 1; i < lines.length; i++) {
        const colon = lines[i].indexOf(':');
        const name = lines[i].slice(0, colon);
        if (colon > 0 && !(name in headers)) headers[name] = lines[i].slice(colon + 1);
      }
      if (command === 'CONNECT' || command === 'STOMP') {
        conn.write('CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0');
      } else if (command === 'SUBSCRIBE') {
        let members = topics.get(headers.destination);
        if (!members) topics.set(headers.destination, (members = new Map()));
        members.set(conn, headers.id);
        subscriptions.set(headers.id, headers.destination);
      } else if (command === 'UNSUBSCRIBE') {
        const dest = subscriptions.get(headers.id);
        if (dest !== undefined) { subscriptions.delete(headers.id); topics.get(dest).delete(conn); }
      } else if (command === 'SEND') {
        const members = topics.get(headers.destination);
        if (members) {
          const tail = `\nmessage-id:${++messageId}\ndestination:${headers.destination}\n` +
            `content-length:${Buffer.byteLength(body)}\n\n${body}\0`;
          for (const [member, id] of members) member.write(`MESSAGE\nsubscription:${id}${tail}`);
        }
      }
      if (headers.receipt !== undefined) conn.write(`RECEIPT\nreceipt-id:${headers.receipt}\n\n\0`);
      if (command === 'DISCONNECT') conn.close();
    }
  });
  conn.on('close', () => {
    for (const dest of subscriptions.values()) topics.get(dest).delete(conn);
  });
});

const server = http.createServer();
echo.installHandlers(server, { prefix: '/echo' });
broadcast.installHandlers(server, { prefix: '/broadcast' });
stomp.installHandlers(server, { prefix: '/stomp' });
server.listen(port, host);
process.on('SIGTERM', () => process.exit(0));
