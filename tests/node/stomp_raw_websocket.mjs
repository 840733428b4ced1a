// @stomp/stompjs under Node, with `ws`, against the server's raw /websocket.
//
//   node stomp_raw_websocket.mjs ws://127.0.0.1:PORT/stomp/websocket DESTINATION text|binary HEARTBEAT_MS
//
// Connects, subscribes with a receipt, sends a text and a binary body with
// receipts, waits for heart-beats both ways, then disconnects. Prints one JSON
// object per line (what happened, in order) for the test to check; exits 1 on
// any failure or when it takes too long.

import { Client } from "@stomp/stompjs";
import WebSocket from "ws";

const [url, destination, mode, heartbeatArg] = process.argv.slice(2);
const heartbeat = Number(heartbeatArg || "500");
const binaryFrames = mode === "binary";

const out = (event, fields = {}) => process.stdout.write(JSON.stringify({ event, ...fields }) + "\n");
const fail = (why) => {
  out("failed", { why: String(why) });
  process.exit(1);
};
setTimeout(() => fail("timed out"), 30 * heartbeat + 20000).unref();

// Count the heart-beats the client writes: stompjs sends a bare EOL.
let heartbeatsSent = 0;
class CountingWebSocket extends WebSocket {
  send(data, ...rest) {
    if (data === "\n" || (data instanceof Uint8Array && data.length === 1 && data[0] === 10)) heartbeatsSent++;
    return super.send(data, ...rest);
  }
}
// stompjs opens `new WebSocket(brokerURL, ["v12.stomp", "v11.stomp", "v10.stomp"])`.
globalThis.WebSocket = CountingWebSocket;

const binaryBody = new Uint8Array(300);
for (let i = 0; i < binaryBody.length; i++) binaryBody[i] = (i * 7) % 256; // NULs and invalid UTF-8
const textBody = "héllo ☃ from node";

let heartbeatsReceived = 0;
const receipts = new Map();
const waitReceipt = (client, id) =>
  new Promise((resolve) => {
    client.watchForReceipt(id, (frame) => resolve(frame));
  });

const client = new Client({
  brokerURL: url,
  connectHeaders: { host: "/" },
  reconnectDelay: 0,
  heartbeatIncoming: heartbeat,
  heartbeatOutgoing: heartbeat,
  forceBinaryWSFrames: binaryFrames,
  debug: () => {},
});

const messages = [];
let messageArrived = () => {};

client.onHeartbeatReceived = () => {
  heartbeatsReceived++;
};
client.onStompError = (frame) => fail(`ERROR ${frame.headers.message}: ${frame.body}`);
client.onWebSocketError = (event) => fail(`websocket error ${event && event.message}`);
client.onWebSocketClose = (event) => out("websocket-closed", { code: event.code });

client.onConnect = async (frame) => {
  try {
    out("connected", {
      version: frame.headers.version,
      heartBeat: frame.headers["heart-beat"],
      protocol: client.webSocket.protocol,
    });

    const subscribed = waitReceipt(client, "sub-receipt");
    client.subscribe(
      destination,
      (message) => {
        messages.push(message);
        messageArrived();
      },
      { id: "sub-0", receipt: "sub-receipt" },
    );
    out("receipt", { id: (await subscribed).headers["receipt-id"] });

    const nextMessage = () =>
      new Promise((resolve) => {
        if (messages.length) return resolve(messages.shift());
        messageArrived = () => {
          messageArrived = () => {};
          resolve(messages.shift());
        };
      });

    const sentText = waitReceipt(client, "text-receipt");
    client.publish({ destination, body: textBody, headers: { receipt: "text-receipt", "x-kind": "text" } });
    out("receipt", { id: (await sentText).headers["receipt-id"] });
    const text = await nextMessage();
    out("message", { kind: text.headers["x-kind"], body: text.body, contentLength: text.headers["content-length"] });

    const sentBinary = waitReceipt(client, "binary-receipt");
    client.publish({
      destination,
      binaryBody,
      headers: { receipt: "binary-receipt", "x-kind": "binary", "content-type": "application/octet-stream" },
    });
    out("receipt", { id: (await sentBinary).headers["receipt-id"] });
    const binary = await nextMessage();
    const got = binary.binaryBody;
    out("message", {
      kind: binary.headers["x-kind"],
      length: got.length,
      intact: got.length === binaryBody.length && got.every((b, i) => b === binaryBody[i]),
      contentType: binary.headers["content-type"],
    });

    // Heart-beats both ways: at least two each, while nothing else is sent.
    await new Promise((resolve) => {
      const check = setInterval(() => {
        if (heartbeatsReceived >= 2 && heartbeatsSent >= 2) {
          clearInterval(check);
          resolve();
        }
      }, 20);
    });
    out("heartbeats", { received: heartbeatsReceived, sent: heartbeatsSent });

    // deactivate() sends DISCONNECT with a receipt and waits for it.
    client.onDisconnect = (receipt) => out("disconnected", { receipt: receipt.command });
    await client.deactivate();
    out("done");
    process.exit(0);
  } catch (err) {
    fail(err && err.stack ? err.stack : err);
  }
};

client.activate();
