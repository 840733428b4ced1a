/*
 * Runs before any client library is loaded.
 *
 * Settings come from the query string (so a link or a test can fix them) and
 * otherwise from localStorage; the nickname from sessionStorage (this tab only).  The "legacy browser" switch must take effect
 * before sockjs-client evaluates: sockjs-client picks its WebSocket driver once,
 * at load time (`global.WebSocket || global.MozWebSocket`), so the switch
 * removes those globals here and only then inserts the library scripts.
 */
(function () {
  'use strict';

  var TRANSPORTS = [
    'websocket', 'xhr-streaming', 'eventsource', 'iframe-eventsource', 'htmlfile',
    'iframe-htmlfile', 'xhr-polling', 'iframe-xhr-polling', 'jsonp-polling'
  ];

  function stored(key) {
    try { return window.localStorage.getItem('sockjs-chat.' + key); } catch (e) { return null; }
  }

  // The nickname only for this tab: a second window is for a second person.
  function storedForTab(key) {
    try { return window.sessionStorage.getItem('sockjs-chat.' + key); } catch (e) { return null; }
  }

  var query = new URLSearchParams(window.location.search);
  function pick(key) {
    return query.has(key) ? query.get(key) : stored(key);
  }

  var transport = pick('transport') || 'auto';
  if (transport !== 'auto' && TRANSPORTS.indexOf(transport) === -1) { transport = 'auto'; }
  var legacy = /^(1|true|on|yes)$/i.test(pick('legacy') || '');

  var hadWebSocket = typeof window.WebSocket === 'function';
  if (legacy) {
    // What an old browser looks like to sockjs-client: no WebSocket constructor at all.
    try { delete window.WebSocket; } catch (e) { /* non-configurable in some engines */ }
    try { delete window.MozWebSocket; } catch (e) { /* ignore */ }
    if (window.WebSocket) { window.WebSocket = undefined; }
    if (window.MozWebSocket) { window.MozWebSocket = undefined; }
  }

  window.CHAT_BOOT = {
    transports: TRANSPORTS,
    transport: transport,
    legacy: legacy,
    websocketHidden: legacy && !window.WebSocket && hadWebSocket,
    nick: (query.has('nick') ? query.get('nick') : storedForTab('nick')) || '',
    room: query.get('room') || '',
    autostart: query.has('nick') || /^(1|true)$/.test(query.get('autostart') || ''),
    // Where the SockJS endpoint lives; defaults to "chat" next to this page.
    endpoint: query.get('endpoint') || new URL('chat', window.location.href).href
  };

  // Load the client libraries in order, after the switch above.  async=false keeps
  // the insertion order for dynamically created scripts.
  ['vendor/sockjs.min.js', 'vendor/stomp.umd.min.js', 'static/chat.js'].forEach(function (src) {
    var script = document.createElement('script');
    script.src = src;
    script.async = false;
    document.head.appendChild(script);
  });
}());
