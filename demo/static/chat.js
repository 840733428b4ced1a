/*
 * sockjs-server chat: the browser side.
 *
 * STOMP over SockJS (@stomp/stompjs over sockjs-client).  Destinations:
 *   SUBSCRIBE /topic/room.<room>      room events: message, presence
 *   SUBSCRIBE /app/room.<room>        one reply: {type: "snapshot", members, history}; joins the room
 *   SUBSCRIBE /app/rooms              one reply: the room directory
 *   SUBSCRIBE /topic/rooms            room directory updates
 *   SUBSCRIBE /user/queue/private     private messages, sent and received
 *   SUBSCRIBE /user/queue/errors      errors caused by this user's requests
 *   SEND      /app/say       {room, text, ref}
 *   SEND      /app/leave     {room}
 *   SEND      /app/private   {to, text, ref}
 *   SEND      /app/ping      with a receipt header: the receipt measures the round trip
 * The nickname is the STOMP `login` header; the server stamps it on everything sent.
 * A refused say/private comes back on /user/queue/errors with its `ref`: its text goes back
 * into the box.  Presence events list the members and, among them, those `away` (connection
 * lost, back within the server's grace period without a new "joined").
 */
(function () {
  'use strict';

  var boot = window.CHAT_BOOT;
  var SockJS = window.SockJS;
  var StompJs = window.StompJs;
  var $ = function (id) { return document.getElementById(id); };

  var TRANSPORT_LABELS = {
    auto: 'Automatic (best available)',
    websocket: 'WebSocket',
    'xhr-streaming': 'XHR streaming',
    eventsource: 'EventSource',
    'iframe-eventsource': 'EventSource in iframe',
    htmlfile: 'htmlfile',
    'iframe-htmlfile': 'htmlfile in iframe',
    'xhr-polling': 'XHR polling',
    'iframe-xhr-polling': 'XHR polling in iframe',
    'jsonp-polling': 'JSONP polling'
  };
  var PING_INTERVAL_MS = 5000;
  var DEFAULT_ROOM = 'lobby';
  var MAX_TEXT = 2000;         // the server's limit, in characters (code points)
  var MAX_OUTBOX = 50;         // sent texts remembered until refused (or forgotten)
  var MAX_NICK = 24;          // the server's limit, in characters (code points)
  var NICK_RULE = 'A nickname is 1 to 24 characters, not only spaces: letters, digits, punctuation and emoji all work.';
  // Why a connection closed, in words (sockjs-client's close codes and reasons are for programs).
  var CLOSE_SENTENCES = {
    1000: 'the server ended the connection',
    1001: 'the server is restarting or shutting down',
    1002: 'the server could not be reached',
    1006: 'the network connection dropped',
    1011: 'the server ran into an error',
    2000: 'no way to reach the server worked',
    3000: 'the server ended the connection',
    3001: 'the connection fell too far behind'
  };
  var ME_STATUS = {
    connecting: 'connecting…',
    connected: 'online',
    reconnecting: 'offline · reconnecting…',
    error: 'offline'
  };

  var state = {
    nick: '',
    client: null,
    sock: null,
    connected: false,
    everConnected: false,
    attempts: 0,
    rtt: null,
    pingSeq: 0,
    pingTimer: null,
    rooms: new Map(),      // room -> {messages, ids, members, unread, subs}
    dms: new Map(),        // peer -> {messages, ids, unread}
    directory: [],         // [{name, members}]
    active: null,          // {kind: 'room'|'dm', name}
    globalSubs: [],
    outbox: new Map(),     // ref -> {active, text}: what was sent, in case it is refused
    refSeq: 0
  };

  // ---------------------------------------------------------------- helpers

  function normalizeRoom(name) {
    return String(name || '').trim().toLowerCase()
      .replace(/^#/, '').replace(/\s+/g, '-').replace(/[^a-z0-9_-]/g, '').slice(0, 32);
  }

  function cleanNick(nick) {
    // eslint-disable-next-line no-control-regex
    return String(nick || '').replace(/[\u0000-\u001f\u007f]/g, '').trim();
  }

  // What is wrong with a (cleaned) nickname, or null: a long one is refused, never cut.
  function nickProblem(nick) {
    if (!nick) { return NICK_RULE; }
    var length = textLength(nick);
    if (length > MAX_NICK) {
      return 'This nickname has ' + length + ' characters, ' + (length - MAX_NICK) + ' too many: a nickname is 1 to ' +
        MAX_NICK + ' characters.';
    }
    return null;
  }

  function closeSentence(event) {
    var code = event && event.code;
    return CLOSE_SENTENCES[code] || 'the connection closed';
  }

  function store(key, value) {
    try { window.localStorage.setItem('sockjs-chat.' + key, value); } catch (e) { /* private mode */ }
  }

  // The nickname is remembered for this tab only: another window starts blank, for another person.
  function storeForTab(key, value) {
    try { window.sessionStorage.setItem('sockjs-chat.' + key, value); } catch (e) { /* private mode */ }
  }

  function textLength(text) {
    return Array.from(text).length;  // code points, as the server counts
  }

  function hue(text) {
    var h = 0;
    for (var i = 0; i < text.length; i++) { h = (h * 31 + text.charCodeAt(i)) % 360; }
    return h;
  }

  function avatar(el, nick) {
    el.textContent = (Array.from(nick)[0] || '?').toUpperCase();
    el.style.setProperty('--avatar-hue', hue(nick));
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function timeOf(ts) {
    var d = ts ? new Date(ts * 1000) : new Date();
    return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  function parse(frame) {
    try { return JSON.parse(frame.body); } catch (e) { return null; }
  }

  function send(destination, payload, headers) {
    if (!state.client || !state.connected) { return false; }
    state.client.publish({
      destination: destination,
      body: JSON.stringify(payload),
      headers: Object.assign({ 'content-type': 'application/json' }, headers || {})
    });
    return true;
  }

  // ---------------------------------------------------------------- welcome

  function fillTransportSelect(select, value) {
    select.textContent = '';
    ['auto'].concat(boot.transports).forEach(function (name) {
      var option = el('option', '', TRANSPORT_LABELS[name] + (name === 'auto' ? '' : '  ·  ' + name));
      option.value = name;
      select.appendChild(option);
    });
    select.value = value;
  }

  function settingsUrl(nick, room, transport, legacy) {
    var params = new URLSearchParams();
    if (nick) { params.set('nick', nick); }
    if (room) { params.set('room', room); }
    params.set('transport', transport);
    if (legacy) { params.set('legacy', '1'); }
    var endpointParam = new URLSearchParams(window.location.search).get('endpoint');
    if (endpointParam) { params.set('endpoint', endpointParam); }
    return window.location.pathname + '?' + params.toString();
  }

  function setupWelcome() {
    fillTransportSelect($('transport-select'), boot.transport);
    $('legacy-input').checked = boot.legacy;
    $('nick-input').value = boot.nick;
    $('room-input').value = boot.room || '';
    $('lib-versions').textContent = 'sockjs-client ' + SockJS.version + ' · @stomp/stompjs 7';
    var nickInput = $('nick-input');
    // The browser's own message ("match the requested format") does not say what the format is.
    nickInput.addEventListener('invalid', function () { nickInput.setCustomValidity(NICK_RULE); });
    nickInput.addEventListener('input', function () { nickInput.setCustomValidity(''); });
    $('welcome-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var nick = cleanNick(nickInput.value);
      var problem = nickProblem(nick);
      if (problem) {
        $('welcome-error').textContent = problem;
        $('welcome-error').hidden = false;
        nickInput.focus();
        return;
      }
      var room = normalizeRoom($('room-input').value) || DEFAULT_ROOM;
      var transport = $('transport-select').value;
      var legacy = $('legacy-input').checked;
      storeForTab('nick', nick);
      store('transport', transport);
      store('legacy', legacy ? '1' : '0');
      if (legacy !== boot.legacy) {
        // The switch only works before sockjs-client loads: reload with it applied.
        window.location.assign(settingsUrl(nick, room, transport, legacy));
        return;
      }
      boot.transport = transport;
      start(nick, room);
    });
  }

  // ---------------------------------------------------------------- connection

  function setStatus(status, text) {
    $('status').dataset.status = status;
    $('status-text').textContent = text;
    document.getElementById('app').dataset.connection = status;
    $('me-status').dataset.status = status;
    $('me-status').textContent = ME_STATUS[status] || status;
    if (status !== 'connected') {
      // Nothing is in use and nothing is measured while there is no connection.
      state.rtt = null;
      $('rtt').textContent = '–';
      $('transport-name').textContent = '–';
      document.getElementById('app').dataset.transport = '';
    }
  }

  function showBanner(kind, text, action) {
    var banner = $('banner');
    banner.hidden = false;
    banner.dataset.kind = kind;
    $('banner-text').textContent = text;
    $('banner-action').hidden = !action;
  }

  function hideBanner() { $('banner').hidden = true; }

  function transportLabel() {
    return state.sock && state.sock.transport ? state.sock.transport : '–';
  }

  function start(nick, room) {
    if (state.client) { state.client.deactivate(); }
    state.refused = false;
    state.everConnected = false;
    state.attempts = 0;
    $('welcome-error').hidden = true;
    state.nick = nick;
    document.getElementById('app').dataset.state = 'chat';
    $('me-nick').textContent = nick;
    $('me-nick').title = nick;  // the whole name where it is clipped
    avatar($('me-avatar'), nick);
    joinRoom(room, true);

    var options = boot.transport === 'auto' ? {} : { transports: [boot.transport] };
    var client = new StompJs.Client({
      webSocketFactory: function () {
        var sock = new SockJS(boot.endpoint, null, options);
        state.sock = sock;
        return sock;
      },
      // client-key: this browser's nickname claim (another browser cannot take a nickname in use).
      connectHeaders: { login: nick, passcode: '', 'client-key': clientKey() },
      reconnectDelay: 1000,
      maxReconnectDelay: 15000,
      reconnectTimeMode: StompJs.ReconnectionTimeMode.EXPONENTIAL,
      connectionTimeout: 20000,
      heartbeatIncoming: 20000,
      heartbeatOutgoing: 20000,
      debug: function () {}
    });
    state.client = client;

    client.beforeConnect = function () {
      if (client !== state.client) { return; }
      state.attempts += 1;
      if (state.everConnected) {
        setStatus('reconnecting', 'Reconnecting…');
        showBanner('warning', 'Connection lost. Reconnecting (attempt ' + state.attempts + ')…', true);
      } else {
        setStatus('connecting', state.attempts > 1 ? 'Connecting (attempt ' + state.attempts + ')…' : 'Connecting…');
      }
    };
    client.onConnect = function (frame) {
      if (client === state.client) { onConnect(frame); }
    };
    client.onStompError = function (frame) {
      if (client !== state.client) { return; }
      var message = frame.headers.message || 'The server refused the connection';
      var detail = (frame.body || '').trim();
      if (/nickname/i.test(message)) {
        // Refused at CONNECT because of the nickname: retrying would not help.
        state.refused = true;
        client.deactivate();
        backToWelcome(detail || message);
        return;
      }
      setStatus('error', 'Error');
      showBanner('error', message + (detail ? ': ' + detail : ''), true);
    };
    client.onWebSocketClose = function (event) {
      if (client !== state.client || state.refused) { return; }
      var wasConnected = state.connected;
      state.connected = false;
      stopPing();
      state.globalSubs = [];
      state.rooms.forEach(function (room) { room.subs = []; });
      if (wasConnected || state.everConnected) {
        setStatus('reconnecting', 'Reconnecting…');
        showBanner('warning', 'Connection lost: ' + closeSentence(event) + '. Reconnecting automatically…', true);
      } else {
        setStatus('error', 'Cannot connect');
        showBanner('error', 'Cannot connect over ' + TRANSPORT_LABELS[boot.transport] + ': ' + closeSentence(event) +
          '. Retrying…', true);
      }
      renderAll();
    };
    client.activate();
  }

  function clientKey() {
    var key = null;
    try { key = window.localStorage.getItem('sockjs-chat.client-key'); } catch (e) { /* private mode */ }
    if (!key) {
      key = Array.from(window.crypto.getRandomValues(new Uint8Array(12)), function (b) {
        return ('0' + b.toString(16)).slice(-2);
      }).join('');
      store('client-key', key);
    }
    return key;
  }

  function backToWelcome(error) {
    stopPing();
    state.connected = false;
    state.rooms.clear();
    state.dms.clear();
    state.active = null;
    hideBanner();
    document.getElementById('app').dataset.state = 'welcome';
    $('welcome-error').textContent = error;
    $('welcome-error').hidden = !error;
    $('nick-input').focus();
    $('nick-input').select();
  }

  function reconnectNow() {
    var client = state.client;
    if (!client) { return; }
    client.deactivate().then(function () { client.activate(); });
  }

  function onConnect() {
    var client = state.client;
    state.connected = true;
    state.everConnected = true;
    state.attempts = 0;
    hideBanner();
    setStatus('connected', 'Connected');
    $('transport-name').textContent = transportLabel();
    document.getElementById('app').dataset.transport = transportLabel();

    state.globalSubs = [
      client.subscribe('/user/queue/private', onPrivate),
      client.subscribe('/user/queue/errors', onRefused),
      client.subscribe('/topic/rooms', onDirectory),
      client.subscribe('/app/rooms', onDirectory)
    ];
    state.rooms.forEach(function (room, name) { subscribeRoom(name); });
    renderAll();
    startPing();
  }

  // ---------------------------------------------------------------- round trip

  function ping() {
    if (!state.connected) { return; }
    var id = 'ping-' + (++state.pingSeq);
    var started = performance.now();
    state.client.watchForReceipt(id, function () {
      if (!state.connected) { return; }
      state.rtt = performance.now() - started;
      $('rtt').textContent = state.rtt < 10 ? state.rtt.toFixed(1) + ' ms' : Math.round(state.rtt) + ' ms';
    });
    send('/app/ping', {}, { receipt: id });
  }

  function startPing() {
    stopPing();
    ping();
    state.pingTimer = window.setInterval(ping, PING_INTERVAL_MS);
  }

  function stopPing() {
    if (state.pingTimer) { window.clearInterval(state.pingTimer); state.pingTimer = null; }
  }

  // ---------------------------------------------------------------- rooms

  function roomState(name) {
    var room = state.rooms.get(name);
    if (!room) {
      room = { messages: [], ids: new Set(), members: [], away: [], unread: 0, subs: [] };
      state.rooms.set(name, room);
    }
    return room;
  }

  function joinRoom(name, activate) {
    name = normalizeRoom(name);
    if (!name) { return; }
    var isNew = !state.rooms.has(name);
    var room = roomState(name);
    if (isNew) { room.cameFrom = state.active; }  // where to go back to if the join is refused
    if (isNew && state.connected) { subscribeRoom(name); }
    if (activate) { setActive({ kind: 'room', name: name }); }
    renderAll();
  }

  function subscribeRoom(name) {
    var room = roomState(name);
    var client = state.client;
    room.subs = [
      client.subscribe('/topic/room.' + name, function (frame) { onRoomEvent(name, parse(frame)); }),
      // Subscribing to the /app destination joins the room; the reply is the snapshot.
      client.subscribe('/app/room.' + name, function (frame) { onSnapshot(name, parse(frame)); })
    ];
  }

  function forgetRoom(name) {
    var room = state.rooms.get(name);
    if (!room) { return false; }
    room.subs.forEach(function (sub) { try { sub.unsubscribe(); } catch (e) { /* closed */ } });
    state.rooms.delete(name);
    if (isActive('room', name)) {
      var back = room.cameFrom && conversationOf(room.cameFrom) ? room.cameFrom : null;
      var next = state.rooms.keys().next();
      setActive(back || (next.done ? null : { kind: 'room', name: next.value }));
    }
    return true;
  }

  function leaveRoom(name) {
    if (forgetRoom(name)) {
      send('/app/leave', { room: name });
      renderAll();
    }
  }

  function addMessage(conv, message) {
    if (message.id && conv.ids.has(message.id)) { return false; }
    if (message.id) { conv.ids.add(message.id); }
    conv.messages.push(message);
    if (conv.messages.length > 500) { conv.messages.splice(0, conv.messages.length - 500); }
    return true;
  }

  function isActive(kind, name) {
    return state.active && state.active.kind === kind && state.active.name === name;
  }

  function onSnapshot(name, body) {
    if (!body || !state.rooms.has(name)) { return; }
    if (body.type === 'error') {
      // Not joined (a bad name, too many rooms): the room goes from the list, the reason stays.
      forgetRoom(name);
      renderAll();
      if (activeConversation()) {
        notice('#' + name + ': ' + body.error, 'error');
      } else {
        showBanner('error', '#' + name + ': ' + body.error, false);
      }
      return;
    }
    var room = roomState(name);
    room.members = body.members || [];
    room.away = body.away || [];
    var history = body.history || [];
    // History on join; after a reconnect only what was missed is added.
    var fresh = history.filter(function (m) { return !m.id || !room.ids.has(m.id); });
    if (fresh.length) {
      fresh.forEach(function (m) { if (m.id) { room.ids.add(m.id); } });
      room.messages = fresh.concat(room.messages).sort(function (a, b) { return (a.ts || 0) - (b.ts || 0); });
    }
    renderAll();
  }

  function onRoomEvent(name, body) {
    if (!body || !state.rooms.has(name)) { return; }
    var room = roomState(name);
    if (body.type === 'message') {
      if (addMessage(room, body) && !isActive('room', name)) { room.unread += 1; }
    } else if (body.type === 'presence') {
      room.members = body.members || room.members;
      room.away = body.away || [];
      // Only real arrivals and departures are news: a reconnect within the grace period is neither.
      if (body.joined && body.joined !== state.nick) {
        addMessage(room, { type: 'system', text: body.joined + ' joined', ts: body.ts });
      } else if (body.left && body.left !== state.nick) {
        addMessage(room, { type: 'system', text: body.left + ' left', ts: body.ts });
      }
    }
    renderAll();
  }

  function onDirectory(frame) {
    var body = parse(frame);
    if (body && Array.isArray(body.rooms)) {
      state.directory = body.rooms;
      renderDirectory();
    }
  }

  // ---------------------------------------------------------------- private messages

  function dmState(peer) {
    var conv = state.dms.get(peer);
    if (!conv) {
      conv = { messages: [], ids: new Set(), unread: 0 };
      state.dms.set(peer, conv);
    }
    return conv;
  }

  function onPrivate(frame) {
    var body = parse(frame);
    if (!body) { return; }
    var peer = body.from === state.nick ? body.to : body.from;
    var conv = dmState(peer);
    if (addMessage(conv, body) && !isActive('dm', peer)) { conv.unread += 1; }
    renderAll();
  }

  function openDm(peer) {
    if (!peer || peer === state.nick) { return; }
    dmState(peer);
    setActive({ kind: 'dm', name: peer });
    renderAll();
    closeDrawers();
    $('message-input').focus();
  }

  function notice(text, kind) {
    var conv = activeConversation();
    if (conv) {
      addMessage(conv, { type: 'system', kind: kind || 'info', text: text });
      renderMessages();
    }
  }

  function conversationOf(active) {
    return active.kind === 'room' ? state.rooms.get(active.name) : state.dms.get(active.name);
  }

  // A refused request; when it is a message this page sent, its text goes back into the box.
  function onRefused(frame) {
    var body = parse(frame);
    var error = body && body.error ? body.error : frame.body;
    var sent = body && body.ref ? state.outbox.get(body.ref) : null;
    if (!sent) { notice(error, 'error'); return; }
    state.outbox.delete(body.ref);
    var conv = conversationOf(sent.active) || activeConversation();
    var input = $('message-input');
    var here = isActive(sent.active.kind, sent.active.name);
    var restored = here && !input.value.trim();
    if (restored) {
      input.value = sent.text;
      renderLength();
    }
    if (conv) {
      addMessage(conv, {
        type: 'system',
        kind: 'error',
        text: error + (restored ? ' Your message is back in the box.' : ' Not sent: “' + sent.text.slice(0, 80) + (sent.text.length > 80 ? '…' : '') + '”')
      });
    }
    renderMessages();
    if (restored) { input.focus(); }
  }

  // ---------------------------------------------------------------- rendering

  function activeConversation() {
    if (!state.active) { return null; }
    return state.active.kind === 'room' ? state.rooms.get(state.active.name) : state.dms.get(state.active.name);
  }

  function setActive(active) {
    state.active = active;
    var conv = activeConversation();
    if (conv) { conv.unread = 0; }
  }

  function renderAll() {
    renderNav();
    renderDirectory();
    renderHeader();
    renderMembers();
    renderMessages();
    renderComposer();
  }

  function navItem(label, prefix, unread, selected, onClick, extra) {
    var li = el('li', 'nav-item' + (selected ? ' selected' : ''));
    var button = el('button', 'nav-link');
    button.type = 'button';
    button.appendChild(el('span', 'nav-prefix', prefix));
    button.appendChild(el('span', 'nav-label', label));
    if (unread) { button.appendChild(el('span', 'badge', String(unread))); }
    button.addEventListener('click', onClick);
    li.appendChild(button);
    if (extra) { li.appendChild(extra); }
    return li;
  }

  function renderNav() {
    var list = $('room-list');
    list.textContent = '';
    state.rooms.forEach(function (room, name) {
      var leave = el('button', 'nav-close', '×');
      leave.type = 'button';
      leave.title = 'Leave #' + name;
      leave.setAttribute('aria-label', 'Leave #' + name);
      leave.addEventListener('click', function () { leaveRoom(name); });
      var item = navItem(name, '#', room.unread, isActive('room', name), function () {
        setActive({ kind: 'room', name: name });
        renderAll();
        closeDrawers();
      }, leave);
      item.dataset.room = name;
      list.appendChild(item);
    });
    var dmList = $('dm-list');
    dmList.textContent = '';
    if (!state.dms.size) {
      dmList.appendChild(el('li', 'muted small empty', 'Click a member to message them privately.'));
    }
    state.dms.forEach(function (conv, peer) {
      var item = navItem(peer, '@', conv.unread, isActive('dm', peer), function () { openDm(peer); });
      item.dataset.peer = peer;
      dmList.appendChild(item);
    });
    var unread = 0;
    state.rooms.forEach(function (r) { unread += r.unread; });
    state.dms.forEach(function (c) { unread += c.unread; });
    document.title = (unread ? '(' + unread + ') ' : '') + 'sockjs-server chat';
  }

  function renderDirectory() {
    var list = $('directory-list');
    list.textContent = '';
    // Active rooms only: the server lists rooms with members; an empty one is not an invitation.
    var others = state.directory.filter(function (r) { return r.members > 0 && !state.rooms.has(r.name); });
    if (!others.length) {
      list.appendChild(el('li', 'muted small empty', 'No other active rooms.'));
    }
    others.forEach(function (r) {
      var count = el('span', 'count', String(r.members));
      var item = navItem(r.name, '#', 0, false, function () { joinRoom(r.name, true); closeDrawers(); }, count);
      item.dataset.room = r.name;
      list.appendChild(item);
    });
  }

  function renderHeader() {
    var title = $('conversation-title');
    var subtitle = $('conversation-subtitle');
    var leave = $('leave-button');
    var active = state.active;
    if (!active) {
      title.textContent = 'No room';
      subtitle.textContent = 'Join a room from the list.';
      leave.hidden = true;
    } else if (active.kind === 'room') {
      var room = state.rooms.get(active.name);
      var n = room ? room.members.length : 0;
      title.textContent = '#' + active.name;
      var away = room ? room.away.length : 0;
      if (!state.connected) {
        subtitle.textContent = (n === 1 ? '1 member' : n + ' members') + ' when last connected';
      } else {
        subtitle.textContent = (n - away === 1 ? '1 member' : (n - away) + ' members') + ' online' +
          (away ? ' · ' + away + ' reconnecting' : '');
      }
      leave.hidden = false;
    } else {
      title.textContent = '@' + active.name;
      subtitle.textContent = 'Private conversation';
      leave.hidden = true;
    }
    $('message-input').placeholder = active ? 'Message ' + title.textContent : 'Join a room to chat';
  }

  function renderMembers() {
    var list = $('member-list');
    list.textContent = '';
    var active = state.active;
    if (!active || active.kind !== 'room') {
      $('members-title').textContent = 'Members';
      list.appendChild(el('li', 'muted small empty', active ? 'Private conversation with ' + active.name + '.' : ''));
      return;
    }
    var room = state.rooms.get(active.name);
    var members = (room ? room.members : []).slice().sort(function (a, b) { return a.localeCompare(b); });
    var away = room ? room.away : [];
    $('members-title').textContent = 'Members · ' + members.length;
    members.forEach(function (member) {
      var isAway = away.indexOf(member) !== -1;
      var li = el('li', 'member' + (isAway ? ' away' : ''));
      li.dataset.member = member;
      if (isAway) { li.dataset.away = 'true'; }
      var button = el('button', 'member-button');
      button.type = 'button';
      var av = el('span', 'avatar avatar-small');
      avatar(av, member);
      button.appendChild(av);
      button.appendChild(el('span', 'member-name', member)).title = member;
      if (isAway) {
        button.appendChild(el('span', 'member-away', 'reconnecting…'));
        button.title = member + ' lost their connection; they stay listed a few seconds in case they come back.';
      }
      if (member === state.nick) {
        button.appendChild(el('span', 'muted small', 'you'));
        button.disabled = true;
      } else {
        button.title = 'Message ' + member + ' privately';
        if (!isAway) { button.appendChild(el('span', 'member-action', 'Message')); }
        button.addEventListener('click', function () { openDm(member); });
      }
      li.appendChild(button);
      list.appendChild(li);
    });
  }

  function renderMessages() {
    var list = $('messages');
    var nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    list.textContent = '';
    var conv = activeConversation();
    if (!conv) { return; }
    if (!conv.messages.length) {
      var hint = state.active.kind === 'room'
        ? 'This is the beginning of #' + state.active.name + '. Say hello!'
        : 'Messages to ' + state.active.name + ' are private.';
      list.appendChild(el('li', 'system', hint));
    }
    var previous = null;
    conv.messages.forEach(function (m) {
      if (m.type === 'system') {
        var sys = el('li', 'system' + (m.kind === 'error' ? ' system-error' : ''), m.text);
        list.appendChild(sys);
        previous = null;
        return;
      }
      var continued = previous && previous.from === m.from && (m.ts || 0) - (previous.ts || 0) < 300;
      var li = el('li', 'message' + (continued ? ' continued' : '') + (m.from === state.nick ? ' mine' : ''));
      li.dataset.from = m.from;
      if (!continued) {
        var av = el('span', 'avatar');
        avatar(av, m.from);
        li.appendChild(av);
      }
      var body = el('div', 'message-body');
      if (!continued) {
        var meta = el('div', 'message-meta');
        meta.appendChild(el('span', 'message-from', m.from)).title = m.from;
        if (m.to) { meta.appendChild(el('span', 'message-to', '→ ' + m.to)); }
        meta.appendChild(el('time', 'message-time', timeOf(m.ts)));
        body.appendChild(meta);
      }
      body.appendChild(el('div', 'message-text', m.text));
      li.appendChild(body);
      list.appendChild(li);
      previous = m;
    });
    if (nearBottom || previous && previous.from === state.nick) { list.scrollTop = list.scrollHeight; }
  }

  function renderComposer() {
    var enabled = state.connected && !!state.active;
    var tooLong = renderLength();
    $('send-button').disabled = !enabled || tooLong;
    $('composer').dataset.enabled = enabled ? 'true' : 'false';
  }

  // Over-long text stays whole in the box (no silent truncation of a paste) and says so.
  function renderLength() {
    var length = textLength($('message-input').value);
    var tooLong = length > MAX_TEXT;
    var hint = $('composer-hint');
    hint.hidden = !tooLong;
    hint.textContent = tooLong
      ? 'Too long to send: ' + length + ' characters, messages are at most ' + MAX_TEXT +
        '. Shorten it by ' + (length - MAX_TEXT) + ' or split it.'
      : '';
    $('composer').dataset.tooLong = tooLong ? 'true' : 'false';
    return tooLong;
  }

  function renderFacts() {
    var facts = $('facts');
    facts.textContent = '';
    var rows = [
      ['Transport in use', state.connected ? transportLabel() : '– (not connected)'],
      ['Requested', TRANSPORT_LABELS[boot.transport]],
      ['WebSocket in this page', boot.legacy ? 'hidden (legacy browser)' : (window.WebSocket ? 'available' : 'not available')],
      ['Round trip', state.rtt === null ? '–' : state.rtt.toFixed(1) + ' ms'],
      ['Endpoint', boot.endpoint],
      ['sockjs-client', SockJS.version]
    ];
    rows.forEach(function (row) {
      facts.appendChild(el('dt', '', row[0]));
      facts.appendChild(el('dd', '', row[1]));
    });
  }

  // ---------------------------------------------------------------- drawers (phones)

  function closeDrawers() {
    document.getElementById('app').classList.remove('show-rooms', 'show-members');
    $('scrim').hidden = true;
  }

  function toggleDrawer(name) {
    var app = document.getElementById('app');
    var open = !app.classList.contains(name);
    closeDrawers();
    if (open) { app.classList.add(name); $('scrim').hidden = false; }
  }

  // ---------------------------------------------------------------- wiring

  function setupChat() {
    $('composer').addEventListener('submit', function (event) {
      event.preventDefault();
      var input = $('message-input');
      var text = input.value;
      if (!text.trim() || !state.active) { return; }
      if (renderLength()) { input.focus(); return; }
      var ref = 'r' + (++state.refSeq);
      var active = { kind: state.active.kind, name: state.active.name };
      var ok = active.kind === 'room'
        ? send('/app/say', { room: active.name, text: text, ref: ref })
        : send('/app/private', { to: active.name, text: text, ref: ref });
      if (ok) {
        state.outbox.set(ref, { active: active, text: text });
        if (state.outbox.size > MAX_OUTBOX) { state.outbox.delete(state.outbox.keys().next().value); }
        input.value = '';
        renderComposer();
      } else {
        notice('Not connected: your message was not sent.', 'error');
      }
    });
    $('message-input').addEventListener('input', renderComposer);
    $('join-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var name = normalizeRoom($('join-input').value);
      if (name) { joinRoom(name, true); $('join-input').value = ''; closeDrawers(); }
    });
    $('leave-button').addEventListener('click', function () {
      if (state.active && state.active.kind === 'room') { leaveRoom(state.active.name); }
    });
    $('banner-action').addEventListener('click', reconnectNow);
    $('toggle-rooms').addEventListener('click', function () { toggleDrawer('show-rooms'); });
    $('toggle-members').addEventListener('click', function () { toggleDrawer('show-members'); });
    $('scrim').addEventListener('click', closeDrawers);

    var dialog = $('settings');
    $('open-settings').addEventListener('click', function () {
      fillTransportSelect($('settings-transport'), boot.transport);
      $('settings-legacy').checked = boot.legacy;
      renderFacts();
      if (dialog.showModal) { dialog.showModal(); } else { dialog.setAttribute('open', ''); }
    });
    dialog.addEventListener('close', function () {
      var active = state.active && state.active.kind === 'room' ? state.active.name : '';
      if (dialog.returnValue === 'apply') {
        var transport = $('settings-transport').value;
        var legacy = $('settings-legacy').checked;
        store('transport', transport);
        store('legacy', legacy ? '1' : '0');
        window.location.assign(settingsUrl(state.nick, active, transport, legacy));
      } else if (dialog.returnValue === 'signout') {
        window.location.assign(settingsUrl('', active, boot.transport, boot.legacy) + '&autostart=0');
      }
    });
  }

  // Exposed for the browser tests and for curious people in the console.
  window.chat = {
    state: state,
    transport: function () { return state.sock ? state.sock.transport : null; },
    reconnectNow: reconnectNow
  };

  function init() {
    setupWelcome();
    setupChat();
    if (boot.legacy) { document.getElementById('app').dataset.legacy = 'true'; }
    var nick = cleanNick(boot.nick);
    if (boot.autostart && nick) {
      var problem = nickProblem(nick);
      if (!problem) {
        start(nick, normalizeRoom(boot.room) || DEFAULT_ROOM);
        return;
      }
      // Said, not cut: the person picks the shorter name.
      $('welcome-error').textContent = 'The nickname in the link does not fit. ' + problem;
      $('welcome-error').hidden = false;
      $('nick-input').focus();
    }
  }

  // boot.js inserts this script from <head>: it may run before the body is parsed.
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
}());
