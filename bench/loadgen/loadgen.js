'use strict';
// SockJS load generator: speaks the SockJS wire protocol from outside the server
// over raw TCP sockets (websocket, xhr-streaming, xhr-polling, eventsource, with
// xhr_send for the HTTP transports), so that the client does as little work per
// message as possible and stays off the critical path.
//
// Usage: node loadgen.js '<json config>'   (see bench/compare.py for the configs)
// Prints one JSON object with the results on stdout.
//
// Design notes:
// - Every message of a run has the same payload ("xxx..."), so frames are built once
//   and a server frame 'a["..","..",...]' is counted by its quotes, never decoded.
//   The first frame of every session is decoded with JSON.parse to check the payload.
// - Echo latency: messages of one session come back in order, so the send times are
//   kept in a per-session FIFO; broadcast latency: every session receives the single
//   publisher's messages in publishing order, so message i's time is publishTimes[i].
// - Client websocket frames are masked with the all-zero key (valid framing, and the
//   payload needs no XOR pass).
// - Bounded: every scenario stops by itself after its duration (and a hard deadline).

const net = require('net');
const fs = require('fs');
const { performance } = require('perf_hooks');

const cfg = JSON.parse(process.argv[2] || '{}');
const HOST = cfg.host || '127.0.0.1';
const PORT = cfg.port || 8081;
const now = () => performance.now();

// ---------------------------------------------------------------- latency samples
class Samples {
  constructor(cap = 1 << 21) {
    this.buf = new Float64Array(cap);
    this.n = 0;
    this.stride = 1;
    this.skip = 0;
    this.count = 0;
  }
  add(v) {
    this.count++;
    if (++this.skip < this.stride) return;
    this.skip = 0;
    if (this.n === this.buf.length) { // keep every other sample, halve the rate
      for (let i = 0, j = 0; j < this.n; i++, j += 2) this.buf[i] = this.buf[j];
      this.n >>= 1;
      this.stride <<= 1;
    }
    this.buf[this.n++] = v;
  }
  reset() { this.n = 0; this.stride = 1; this.skip = 0; this.count = 0; }
  percentiles(ps) {
    const a = this.buf.slice(0, this.n).sort();
    return ps.map((p) => (a.length ? a[Math.min(a.length - 1, Math.floor(p * a.length))] : null));
  }
}

// ---------------------------------------------------------------- CPU accounting
let CLK_TCK = 100; // Linux USER_HZ
function procCpuSeconds(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime + stime
  } catch (e) {
    return null;
  }
}
function procRssKiB(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'latin1');
    const m = /VmRSS:\s+(\d+)/.exec(s);
    return m ? Number(m[1]) : null;
  } catch (e) {
    return null;
  }
}
class CpuWindow {
  start() {
    this.t0 = now();
    this.me0 = process.cpuUsage();
    this.srv0 = cfg.server_pid ? procCpuSeconds(cfg.server_pid) : null;
  }
  stop() {
    const wall = (now() - this.t0) / 1000;
    const me = process.cpuUsage(this.me0);
    const srv1 = cfg.server_pid ? procCpuSeconds(cfg.server_pid) : null;
    return {
      wall_s: wall,
      loadgen_cpu: (me.user + me.system) / 1e6 / wall,
      server_cpu: this.srv0 != null && srv1 != null ? (srv1 - this.srv0) / wall : null,
    };
  }
}

// ---------------------------------------------------------------- frame helpers
const Q = 34; // '"'
function countQuoted(buf, s, e) {
  let q = 0;
  let i = buf.indexOf(Q, s);
  while (i >= 0 && i < e) {
    q++;
    i = buf.indexOf(Q, i + 1);
  }
  return q >> 1;
}

let checked = 0;
const problems = [];
function problem(msg) {
  if (problems.length < 20) problems.push(msg);
}
function checkFrame(buf, s, e, payload) {
  if (checked > 200) return;
  checked++;
  try {
    const arr = JSON.parse(buf.toString('utf8', s + 1, e));
    for (const m of arr) if (m !== payload) problem(`unexpected message ${JSON.stringify(m).slice(0, 60)}`);
  } catch (err) {
    problem(`bad frame ${buf.toString('utf8', s, Math.min(e, s + 60))}`);
  }
}

// Session ids: random, one server id per session.
let sidCounter = 0;
function sessionPath(prefix, transport) {
  sidCounter++;
  const sid = Math.random().toString(36).slice(2, 10) + sidCounter.toString(36);
  return `${prefix}/${String(sidCounter % 1000).padStart(3, '0')}/${sid}/${transport}`;
}

// ---------------------------------------------------------------- websocket client
const WS_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
function wsClientFrame(text) {
  const payload = Buffer.from(text, 'utf8');
  const n = payload.length;
  let head;
  if (n < 126) head = Buffer.from([0x81, 0x80 | n, 0, 0, 0, 0]);
  else if (n < 65536) head = Buffer.from([0x81, 0xfe, n >> 8, n & 255, 0, 0, 0, 0]);
  else throw new Error('frame too large');
  return Buffer.concat([head, payload]); // zero masking key: payload unchanged
}

class WsConn {
  // sink.onFrame(buf, s, e) per text message, sink.onClose(reason)
  constructor(path, sink) {
    this.sink = sink;
    this.upgraded = false;
    this.rest = null;
    this.frag = null;
    this.closed = false;
    this.sock = net.connect(PORT, HOST);
    this.sock.setNoDelay(true);
    this.sock.on('connect', () => {
      this.sock.write(`GET ${path} HTTP/1.1\r\nHost: ${HOST}:${PORT}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
    this.sock.on('data', (chunk) => this.onData(chunk));
    this.sock.on('error', (err) => this.close(`error ${err.code || err.message}`));
    this.sock.on('close', () => this.close('tcp closed'));
  }
  write(buf) {
    if (!this.closed) this.sock.write(buf);
  }
  close(reason) {
    if (this.closed) return;
    this.closed = true;
    this.sock.destroy();
    this.sink.onClose(reason);
  }
  onData(chunk) {
    let buf = this.rest ? Buffer.concat([this.rest, chunk]) : chunk;
    this.rest = null;
    let off = 0;
    const len = buf.length;
    if (!this.upgraded) {
      const idx = buf.indexOf('\r\n\r\n');
      if (idx < 0) { this.rest = buf; return; }
      const status = buf.toString('latin1', 9, 12);
      if (status !== '101') { this.close(`handshake ${buf.toString('latin1', 0, Math.min(idx, 80))}`); return; }
      this.upgraded = true;
      off = idx + 4;
    }
    while (off + 2 <= len) {
      const b0 = buf[off];
      const b1 = buf[off + 1];
      let plen = b1 & 0x7f;
      let h = 2;
      if (plen === 126) {
        if (off + 4 > len) break;
        plen = buf.readUInt16BE(off + 2);
        h = 4;
      } else if (plen === 127) {
        if (off + 10 > len) break;
        plen = buf.readUInt32BE(off + 2) * 4294967296 + buf.readUInt32BE(off + 6);
        h = 10;
      }
      if (b1 & 0x80) { this.close('masked server frame'); return; }
      if (off + h + plen > len) break;
      const op = b0 & 0x0f;
      const s = off + h;
      const e = s + plen;
      off = e;
      if (op === 1 || op === 2) {
        if (b0 & 0x80) this.sink.onFrame(buf, s, e);
        else this.frag = [buf.subarray(s, e)];
      } else if (op === 0) {
        if (this.frag) this.frag.push(buf.subarray(s, e));
        if (b0 & 0x80 && this.frag) {
          const whole = Buffer.concat(this.frag);
          this.frag = null;
          this.sink.onFrame(whole, 0, whole.length);
        }
      } else if (op === 9) { // ping -> pong with the same payload
        const p = buf.subarray(s, e);
        this.write(Buffer.concat([Buffer.from([0x8a, 0x80 | p.length, 0, 0, 0, 0]), p]));
      } else if (op === 8) {
        this.close('websocket close');
        return;
      }
      if (this.closed) return;
    }
    if (off < len) this.rest = buf.subarray(off);
  }
}

// ---------------------------------------------------------------- HTTP/1.1 client
// One request at a time per connection, keep-alive; chunked and Content-Length bodies.
const S_HEAD = 0, S_CL = 1, S_CHUNK_SIZE = 2, S_CHUNK_DATA = 3, S_CHUNK_CRLF = 4, S_TRAILER = 5, S_EOF = 6, S_IDLE = 7;

class HttpConn {
  constructor() {
    this.sock = null;
    this.state = S_IDLE;
    this.rest = null;
    this.remaining = 0;
    this.keepAlive = true;
    this.cb = null;
    this.dead = false;
  }
  connect() {
    this.sock = net.connect(PORT, HOST);
    this.sock.setNoDelay(true);
    this.rest = null;
    this.sock.on('data', (chunk) => this.onData(chunk));
    this.sock.on('error', () => {});
    this.sock.on('close', () => this.onTcpClose());
  }
  // cb: {onBody(buf, s, e), onEnd(status), onError(reason)}
  request(head, body, cb) {
    if (this.dead) return;
    if (!this.sock || !this.keepAlive || this.sock.destroyed) {
      if (this.sock) this.sock.destroy();
      this.keepAlive = true;
      this.connect();
    }
    this.cb = cb;
    this.state = S_HEAD;
    this.status = 0;
    if (body) this.sock.write(Buffer.concat([head, body]));
    else this.sock.write(head);
  }
  destroy() {
    this.dead = true;
    if (this.sock) this.sock.destroy();
  }
  onTcpClose() {
    const cb = this.cb;
    const st = this.state;
    this.sock = null;
    if (!cb || this.dead) return;
    this.cb = null;
    this.state = S_IDLE;
    if (st === S_EOF) cb.onEnd(this.status);
    else cb.onError(`connection closed in state ${st}`);
  }
  finish() {
    const cb = this.cb;
    this.cb = null;
    this.state = S_IDLE;
    if (cb) cb.onEnd(this.status);
  }
  onData(chunk) {
    let buf = this.rest ? Buffer.concat([this.rest, chunk]) : chunk;
    this.rest = null;
    let off = 0;
    const len = buf.length;
    while (off < len) {
      const st = this.state;
      if (st === S_HEAD) {
        const idx = buf.indexOf('\r\n\r\n', off);
        if (idx < 0) break;
        const head = buf.toString('latin1', off, idx);
        off = idx + 4;
        this.status = Number(head.slice(9, 12));
        const lower = head.toLowerCase();
        this.keepAlive = !/\r\nconnection:\s*close/.test(lower);
        const cl = /\r\ncontent-length:\s*(\d+)/.exec(lower);
        if (this.status === 204 || this.status === 304 || (cl && cl[1] === '0')) { this.finish(); continue; }
        if (/\r\ntransfer-encoding:\s*chunked/.test(lower)) this.state = S_CHUNK_SIZE;
        else if (cl) { this.state = S_CL; this.remaining = Number(cl[1]); }
        else { this.state = S_EOF; this.keepAlive = false; }
      } else if (st === S_CL || st === S_CHUNK_DATA) {
        const n = Math.min(this.remaining, len - off);
        if (this.cb) this.cb.onBody(buf, off, off + n);
        off += n;
        this.remaining -= n;
        if (this.remaining === 0) {
          if (st === S_CL) this.finish();
          else this.state = S_CHUNK_CRLF;
        }
      } else if (st === S_CHUNK_SIZE) {
        const idx = buf.indexOf('\r\n', off);
        if (idx < 0) break;
        const size = parseInt(buf.toString('latin1', off, idx), 16);
        off = idx + 2;
        if (size === 0) this.state = S_TRAILER;
        else { this.state = S_CHUNK_DATA; this.remaining = size; }
      } else if (st === S_CHUNK_CRLF) {
        if (len - off < 2) break;
        off += 2;
        this.state = S_CHUNK_SIZE;
      } else if (st === S_TRAILER) {
        const idx = buf.indexOf('\r\n', off);
        if (idx < 0) break;
        const empty = idx === off;
        off = idx + 2;
        if (empty) this.finish();
      } else if (st === S_EOF) {
        if (this.cb) this.cb.onBody(buf, off, len);
        off = len;
      } else {
        off = len; // unexpected bytes while idle: ignore
      }
    }
    if (off < len) this.rest = buf.subarray(off);
  }
}

// Splits a body stream into lines; calls fn(buf, s, e) per line without the '\n'.
class LineSplitter {
  constructor(fn) { this.fn = fn; this.partial = null; }
  reset() { this.partial = null; }
  feed(buf, s, e) {
    let i = s;
    if (this.partial) {
      const nl = buf.indexOf(10, s);
      if (nl < 0 || nl >= e) { this.partial = Buffer.concat([this.partial, buf.subarray(s, e)]); return; }
      const line = Buffer.concat([this.partial, buf.subarray(s, nl)]);
      this.partial = null;
      this.fn(line, 0, line.length);
      i = nl + 1;
    }
    while (i < e) {
      const nl = buf.indexOf(10, i);
      if (nl < 0 || nl >= e) { this.partial = Buffer.from(buf.subarray(i, e)); return; }
      this.fn(buf, i, nl);
      i = nl + 1;
    }
  }
}

// ---------------------------------------------------------------- SockJS sessions
const A = 0x61, O = 0x6f, H = 0x68, C = 0x63, M = 0x6d;

class Session {
  // A SockJS session from the client's side: any transport, counts received messages.
  constructor(run, index) {
    this.run = run;
    this.index = index;
    this.opened = false;
    this.closed = false;
    this.recv = 0;
    this.firstChecked = false;
  }
  onFrame(buf, s, e) {
    const t = buf[s];
    if (t === A) {
      const k = countQuoted(buf, s, e);
      if (!this.firstChecked) { this.firstChecked = true; checkFrame(buf, s, e, this.run.payload); }
      this.recv += k;
      this.run.onMessages(this, k);
    } else if (t === O) {
      if (!this.opened) { this.opened = true; this.run.onOpen(this); }
    } else if (t === H) {
      // heartbeat
    } else if (t === C) {
      this.onClose(`close frame ${buf.toString('utf8', s, Math.min(e, s + 60))}`);
    } else if (t === M) {
      this.recv += 1;
      this.run.onMessages(this, 1);
    }
  }
  onClose(reason) {
    if (this.closed) return;
    this.closed = true;
    this.run.onSessionClosed(this, reason);
  }
}

class WsSession extends Session {
  constructor(run, index, prefix) {
    super(run, index);
    this.conn = new WsConn(sessionPath(prefix, 'websocket'), this);
    this.frames = run.frames; // frames[k] = k client frames of one message each
  }
  send(k) {
    while (k > 0) {
      const m = Math.min(k, 64);
      this.conn.write(this.frames(m));
      k -= m;
    }
  }
  destroy() { this.closed = true; this.conn.closed = true; this.conn.sock.destroy(); }
}

function framesCache(payload) {
  const one = wsClientFrame(JSON.stringify([payload]));
  const cache = [Buffer.alloc(0), one];
  return (k) => {
    while (cache.length <= k) cache.push(Buffer.concat([cache[cache.length - 1], one]));
    return cache[k];
  };
}

class HttpSession extends Session {
  // Receives over xhr_streaming / eventsource / xhr (polling); sends with xhr_send.
  constructor(run, index, prefix, transport) {
    super(run, index);
    const base = sessionPath(prefix, transport);
    this.base = base.slice(0, base.lastIndexOf('/'));
    this.transport = transport;
    const method = transport === 'eventsource' ? 'GET' : 'POST';
    this.recvHead = Buffer.from(`${method} ${this.base}/${transport} HTTP/1.1\r\nHost: ${HOST}:${PORT}\r\n` +
      (method === 'POST' ? 'Content-Length: 0\r\n' : '') + '\r\n');
    this.sendPath = `${this.base}/xhr_send`;
    this.recvConn = new HttpConn();
    this.sendConn = new HttpConn();
    this.sending = false;
    this.pending = 0;
    const es = transport === 'eventsource';
    this.splitter = new LineSplitter(es ? (b, s, e) => this.esLine(b, s, e) : (b, s, e) => {
      if (e > s) this.onFrame(b, s, e);
    });
    this.recvCb = {
      onBody: (b, s, e) => this.splitter.feed(b, s, e),
      onEnd: (status) => this.recvEnded(status),
      onError: (reason) => this.onClose(reason),
    };
    this.sendCb = {
      onBody: () => {},
      onEnd: (status) => this.sendEnded(status),
      onError: (reason) => this.onClose(`xhr_send ${reason}`),
    };
    this.poll();
  }
  esLine(b, s, e) {
    if (e > s && b[e - 1] === 13) e--;
    if (e - s > 6 && b[s] === 100 /* d */ && b[s + 4] === 58 /* : */) this.onFrame(b, s + 6, e);
  }
  poll() {
    if (this.closed) return;
    this.splitter.reset();
    this.recvConn.request(this.recvHead, null, this.recvCb);
  }
  recvEnded(status) {
    if (this.closed) return;
    if (status !== 200) { this.onClose(`${this.transport} status ${status}`); return; }
    // xhr-polling: next poll; streaming transports: the response limit was reached, reconnect.
    if (this.run.running) this.poll();
  }
  send(k) {
    this.pending += k;
    if (!this.sending) this.pump();
  }
  pump() {
    if (this.closed || this.pending === 0) return;
    const k = Math.min(this.pending, this.run.batch);
    this.pending -= k;
    this.sending = true;
    this.run.noteSent(this, k);
    const body = this.run.sendBody(k);
    const head = Buffer.from(`POST ${this.sendPath} HTTP/1.1\r\nHost: ${HOST}:${PORT}\r\n` +
      `Content-Type: text/plain;charset=UTF-8\r\nContent-Length: ${body.length}\r\n\r\n`);
    this.sendConn.request(head, body, this.sendCb);
  }
  sendEnded(status) {
    this.sending = false;
    if (status !== 204 && status !== 200) { this.onClose(`xhr_send status ${status}`); return; }
    this.pump();
  }
  destroy() { this.closed = true; this.recvConn.destroy(); this.sendConn.destroy(); }
}

function bodyCache(payload) {
  const cache = [Buffer.alloc(0)];
  return (k) => {
    while (cache.length <= k) {
      const n = cache.length;
      cache.push(Buffer.from(JSON.stringify(new Array(n).fill(payload))));
    }
    return cache[k];
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function openSession(run, i, transport, prefix) {
  return transport === 'websocket' ? new WsSession(run, i, prefix) : new HttpSession(run, i, prefix, transport);
}

// Opens n sessions with at most `concurrency` openings in flight; resolves when all
// are open (or failed), or at the deadline.
async function openAll(run, n, transport, prefix, concurrency, deadlineMs) {
  const sessions = [];
  let inflight = 0;
  let next = 0;
  let settled = 0;
  const end = now() + deadlineMs;
  return new Promise((resolve) => {
    const startMore = () => {
      while (inflight < concurrency && next < n) {
        inflight++;
        sessions.push(openSession(run, run.sessions.length + next, transport, prefix));
        next++;
      }
    };
    run.onOpenHook = () => { inflight--; settled++; startMore(); if (settled >= n) finish(); };
    run.onFailHook = () => { inflight--; settled++; startMore(); if (settled >= n) finish(); };
    const timer = setTimeout(() => finish(), Math.max(0, end - now()));
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      run.onOpenHook = null;
      run.onFailHook = null;
      for (const s of sessions) run.sessions.push(s);
      resolve(sessions);
    };
    startMore();
  });
}

// ---------------------------------------------------------------- runs
class BaseRun {
  constructor() {
    this.sessions = [];
    this.running = true;
    this.payload = 'x'.repeat(cfg.size || 16);
    this.frames = framesCache(this.payload);
    this.sendBody = bodyCache(this.payload);
    this.batch = cfg.batch || 1;
    this.closedSessions = 0;
    this.closeReasons = {};
    this.opens = 0;
    this.onOpenHook = null;
    this.onFailHook = null;
  }
  onOpen(s) { this.opens++; if (this.onOpenHook) this.onOpenHook(s); }
  onMessages() {}
  noteSent() {}
  onSessionClosed(s, reason) {
    if (!s.opened && this.onFailHook) this.onFailHook(s);
    if (!this.running) return;
    this.closedSessions++;
    const key = String(reason).slice(0, 80);
    this.closeReasons[key] = (this.closeReasons[key] || 0) + 1;
  }
  shutdown() {
    this.running = false;
    for (const s of this.sessions) s.destroy();
  }
}

// Echo: each session keeps `window` messages in flight (1 = ping-pong).
class EchoRun extends BaseRun {
  constructor() {
    super();
    this.window = cfg.window || 1;
    this.samples = new Samples();
    this.measuring = false;
    this.received = 0;
  }
  onOpen(s) {
    super.onOpen(s);
    s.fifo = new Float64Array(Math.max(2, this.window * 2));
    s.head = 0;
    s.count = 0;
    if (s instanceof WsSession) { this.noteSent(s, this.window); s.send(this.window); } else s.send(this.window);
  }
  noteSent(s, k) {
    const t = now();
    const f = s.fifo;
    for (let i = 0; i < k; i++) {
      f[(s.head + s.count) % f.length] = t;
      s.count++;
    }
  }
  onMessages(s, k) {
    const t = now();
    const f = s.fifo;
    for (let i = 0; i < k; i++) {
      if (s.count === 0) { problem('more echoes than messages sent'); break; }
      const t0 = f[s.head];
      s.head = (s.head + 1) % f.length;
      s.count--;
      if (this.measuring) this.samples.add(t - t0);
    }
    if (this.measuring) this.received += k;
    if (!this.running) return;
    if (s instanceof WsSession) { this.noteSent(s, k); s.send(k); } else s.send(k);
  }
  async main() {
    const n = cfg.sessions || 50;
    const transport = cfg.transport || 'websocket';
    await openAll(this, n, transport, cfg.prefix || '/echo', cfg.open_concurrency || 50, 15000);
    await sleep((cfg.warmup || 1) * 1000);
    const cpu = new CpuWindow();
    this.measuring = true;
    cpu.start();
    await sleep((cfg.duration || 5) * 1000);
    this.measuring = false;
    const c = cpu.stop();
    const [p50, p99] = this.samples.percentiles([0.5, 0.99]);
    this.shutdown();
    return {
      msgs_per_s: this.received / c.wall_s,
      p50_ms: p50,
      p99_ms: p99,
      sessions_open: this.opens,
      ...c,
    };
  }
}

// Broadcast fan-out: one publisher at a given rate, every session receives every
// message; searches the highest rate whose p99 latency stays under the limit and
// which is fully delivered.
class BroadcastRun extends BaseRun {
  constructor() {
    super();
    this.publishTimes = new Float64Array(1 << 23);
    this.published = 0;
    this.samples = new Samples();
    this.stepFrom = 0;
    this.received = 0;
  }
  onMessages(s, k) {
    const t = now();
    const pt = this.publishTimes;
    for (let i = s.recv - k; i < s.recv; i++) if (i >= this.stepFrom) this.samples.add(t - pt[i]);
    this.received += k;
  }
  async step(rate, seconds) {
    // Publish `rate` messages/s for `seconds`, then wait for every delivery.
    const pub = this.sessions[0];
    this.samples.reset();
    this.stepFrom = this.published;
    const first = this.published;
    const total = Math.round(rate * seconds);
    const t0 = now();
    const cpu = new CpuWindow();
    cpu.start();
    await new Promise((resolve) => {
      const tick = () => {
        const due = Math.min(total, Math.floor((rate * (now() - t0)) / 1000) + 1) - (this.published - first);
        if (due > 0) {
          const t = now();
          for (let i = 0; i < due; i++) this.publishTimes[this.published++] = t;
          pub.send(due);
        }
        if (this.published - first >= total) { clearInterval(iv); resolve(); }
      };
      const iv = setInterval(tick, 2);
      tick();
    });
    const sentAt = now();
    const live = () => this.sessions.filter((s) => !s.closed);
    const deadline = sentAt + (cfg.drain_ms || 1500);
    while (now() < deadline && live().some((s) => s.recv < this.published)) await sleep(5);
    const c = cpu.stop();
    const lagging = live().filter((s) => s.recv < this.published).length;
    const [p50, p99] = this.samples.percentiles([0.5, 0.99]);
    const expected = total * this.sessions.length;
    const delivered = this.samples.count;
    const ok = lagging === 0 && this.closedSessions === 0 && p99 != null && p99 < (cfg.p99_limit_ms || 100) && delivered >= expected;
    const r = { rate, deliveries_per_s: rate * this.sessions.length, p50_ms: p50, p99_ms: p99, ok, lagging,
      delivered, expected, ...c };
    if (!ok) {
      // let a backlog drain before the next step
      const d2 = now() + 3000;
      while (now() < d2 && live().some((s) => s.recv < this.published)) await sleep(20);
    }
    return r;
  }
  async main() {
    const n = cfg.sessions || 1000;
    await openAll(this, n, 'websocket', cfg.prefix || '/broadcast', cfg.open_concurrency || 100, 20000);
    if (this.opens < n) return { error: `only ${this.opens} of ${n} sessions opened`, close_reasons: this.closeReasons };
    const secs = cfg.step_seconds || 1.5;
    const steps = [];
    const hardEnd = now() + (cfg.max_search_s || 60) * 1000;
    let rate = cfg.start_rate || 20;
    const factor = cfg.factor || 1.6;
    let best = null;
    let fail = null;
    const tryRate = async (r) => {
      const res = await this.step(r, secs);
      steps.push(res);
      if (res.ok && (!best || r > best.rate)) best = res;
      if (!res.ok && (!fail || r < fail)) fail = r;
      return res.ok;
    };
    await tryRate(rate); // warm-up step, also the first probe
    const up = best !== null;
    for (let i = 0; i < 14 && now() < hardEnd && this.closedSessions === 0; i++) {
      rate = up ? rate * factor : rate / factor;
      const ok = await tryRate(rate);
      if (up !== ok) break;
      if (!up && rate < 1) break;
    }
    for (let i = 0; i < (cfg.bisect || 3) && best && fail && now() < hardEnd && this.closedSessions === 0; i++) {
      const mid = Math.sqrt(best.rate * fail);
      if (fail / best.rate < 1.04) break;
      await tryRate(mid);
    }
    this.shutdown();
    return {
      deliveries_per_s: best ? best.deliveries_per_s : 0,
      rate: best ? best.rate : 0,
      p50_ms: best ? best.p50_ms : null,
      p99_ms: best ? best.p99_ms : null,
      loadgen_cpu: best ? best.loadgen_cpu : null,
      server_cpu: best ? best.server_cpu : null,
      sessions_open: this.opens,
      first_failing_rate: fail,
      steps: steps.map((s) => ({ rate: Math.round(s.rate * 10) / 10, ok: s.ok, p99_ms: s.p99_ms,
        lagging: s.lagging, loadgen_cpu: s.loadgen_cpu, server_cpu: s.server_cpu })),
    };
  }
}

// Idle sessions: server RSS per open session.
class IdleRun extends BaseRun {
  async main() {
    const n = cfg.sessions || 5000;
    const transport = cfg.transport || 'websocket';
    const prefix = cfg.prefix || '/echo';
    const conc = cfg.open_concurrency || 100;
    await openAll(this, cfg.warm_sessions || 100, transport, prefix, conc, 20000);
    await sleep(1000);
    const rss0 = procRssKiB(cfg.server_pid);
    const warmOpen = this.opens;
    const t0 = now();
    await openAll(this, n, transport, prefix, conc, (cfg.open_timeout_s || 60) * 1000);
    const openSecs = (now() - t0) / 1000;
    const opened = this.opens - warmOpen;
    await sleep((cfg.settle_s || 2) * 1000);
    const rss1 = procRssKiB(cfg.server_pid);
    const stillOpen = this.sessions.filter((s) => s.opened && !s.closed).length - warmOpen;
    this.shutdown();
    return {
      kib_per_session: rss0 != null && rss1 != null && opened > 0 ? (rss1 - rss0) / opened : null,
      rss_before_kib: rss0,
      rss_after_kib: rss1,
      sessions_open: opened,
      still_open: stillOpen,
      opens_per_s: opened / openSecs,
    };
  }
}

async function main() {
  const hard = setTimeout(() => {
    process.stdout.write(JSON.stringify({ error: 'hard deadline reached' }) + '\n');
    process.exit(2);
  }, (cfg.hard_deadline_s || 180) * 1000);
  const kind = cfg.kind || 'echo';
  const run = kind === 'echo' ? new EchoRun() : kind === 'broadcast' ? new BroadcastRun() : new IdleRun();
  let res;
  try {
    res = await run.main();
  } catch (err) {
    res = { error: String(err && err.stack || err) };
  }
  run.running = false;
  res.closed_sessions = run.closedSessions;
  res.close_reasons = run.closeReasons;
  res.problems = problems;
  process.stdout.write(JSON.stringify(res) + '\n');
  clearTimeout(hard);
  process.exit(0);
}

main();
