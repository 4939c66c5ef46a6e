/* livechat-bridge visitor widget: plain ES2020, no dependencies, no build step.
   Embed: <script src="https://chat.example.org/widget.js" async></script>
   Everything lives in an open Shadow DOM on <livechat-bridge id="livechat-bridge">;
   text from the network is only ever shown through textContent. */
(() => {
'use strict';
const me = document.currentScript; // read now: it is null once this run is over
if (!me || document.getElementById('livechat-bridge')) return;
const src = new URL(me.src, location.href);
const BASE = src.origin + src.pathname.replace(/\/[^/]*$/, '');
const WSURL = BASE.replace(/^http/, 'ws') + '/v1/ws';
const KEY = 'lcb:' + BASE;
const OPT = window.LivechatBridge || {};
let S = {
  title: 'Chat with us', chat: 'Chat with us', leave: 'Leave a message', start: 'Start chat',
  name: 'Your name', email: 'Email', topic: 'Topic', send: 'Send',
  placeholder: 'Write a message…', typing: '{name} is typing…', joined: '{name} joined',
  left: '{name} left', transferred: 'Transferred to {name}',
  queue: 'You are number {position} in line', offline: 'We are offline right now.',
  ended: 'The chat has ended.', reconnecting: 'Reconnecting…', error: 'Something went wrong.',
  end: 'End chat', new: 'New chat', close: 'Minimize',
};

const CSS = `
:host{all:initial}
.lcb{all:initial;--c:#2563eb;--t:#fff;position:fixed;z-index:2147483000;bottom:20px;right:20px;
 display:flex;flex-direction:column;align-items:flex-end;gap:12px;color:#1f2328;
 font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
.lcb-left{right:auto;left:20px;align-items:flex-start}
*{box-sizing:border-box}
[hidden]{display:none!important}
button,input,select,textarea{font:inherit;color:inherit;margin:0}
button{cursor:pointer}
:focus-visible{outline:2px solid var(--c);outline-offset:2px}
.lcb-launcher{position:relative;display:flex;align-items:center;gap:8px;height:52px;min-width:52px;
 padding:0 18px;border:0;border-radius:26px;background:var(--c);color:var(--t);font-weight:600;
 box-shadow:0 4px 14px rgba(0,0,0,.25);transition:transform .15s}
.lcb-launcher:hover{transform:scale(1.05)}
.lcb-open .lcb-launcher{padding:0;justify-content:center}
.lcb-open .lcb-launcher span,.lcb-visitor .lcb-name{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
.lcb-unread:after{content:"";position:absolute;top:0;right:0;width:12px;height:12px;border-radius:50%;background:#e11d48;border:2px solid #fff}
.lcb-panel{display:flex;flex-direction:column;width:340px;height:480px;max-width:calc(100vw - 24px);
 max-height:calc(100vh - 100px);background:#fff;border-radius:14px;overflow:hidden;
 box-shadow:0 10px 40px rgba(0,0,0,.25);animation:lcb-in .18s ease-out}
@keyframes lcb-in{from{opacity:0;transform:translateY(12px)}}
.lcb-head{display:flex;align-items:center;gap:6px;padding:12px 10px 12px 16px;background:var(--c);color:var(--t)}
.lcb-title{flex:1;font-weight:600;font-size:16px}
.lcb-head button{display:flex;padding:5px 8px;border:0;border-radius:6px;background:none;font-size:13px}
.lcb-head button:hover{background:rgba(255,255,255,.18)}
.lcb-off{padding:24px 16px;text-align:center;color:#57606a}
.lcb-form{display:flex;flex-direction:column;gap:12px;padding:16px;overflow:auto}
label{display:flex;flex-direction:column;gap:4px;font-size:13px;color:#57606a}
input,select,textarea{width:100%;padding:8px 10px;border:1px solid #d0d7de;border-radius:8px;background:#fff;color:#1f2328}
input:focus,select:focus,textarea:focus{outline:2px solid var(--c);outline-offset:-1px;border-color:transparent}
.lcb-form button,.lcb-new{padding:10px 14px;border:0;border-radius:8px;background:var(--c);color:var(--t);font-weight:600}
.lcb-log{flex:1;display:flex;flex-direction:column;gap:8px;padding:14px 12px;overflow-y:auto;background:#f6f8fa}
.lcb-msg{display:flex;flex-direction:column;max-width:82%}
.lcb-text{padding:8px 12px;border-radius:16px;white-space:pre-wrap;overflow-wrap:anywhere}
.lcb-visitor{align-self:flex-end}
.lcb-visitor .lcb-text{background:var(--c);color:var(--t);border-bottom-right-radius:4px}
.lcb-pending{opacity:.55}
.lcb-agent{align-self:flex-start}
.lcb-agent .lcb-text{background:#fff;border:1px solid #e1e4e8;border-bottom-left-radius:4px}
.lcb-name{margin:0 6px 2px;font-size:12px;color:#57606a}
.lcb-system{align-self:center;max-width:90%;text-align:center;font-size:12px;color:#6e7781}
.lcb-system .lcb-text{padding:2px 8px}
.lcb-typing,.lcb-status{padding:4px 14px;font-size:12px;color:#57606a}
.lcb-typing{background:#f6f8fa}
.lcb-status{background:#fff8c5;color:#4d2d00}
.lcb-typing:empty,.lcb-status:empty{display:none}
.lcb-compose{display:flex;align-items:flex-end;gap:8px;padding:10px;border-top:1px solid #e1e4e8}
textarea{flex:1;height:40px;max-height:120px;resize:none}
.lcb-compose button{flex:none;display:flex;align-items:center;justify-content:center;width:40px;height:40px;
 border:0;border-radius:50%;background:var(--c);color:var(--t)}
:disabled{opacity:.5;cursor:default}
.lcb-new{margin:0 10px 10px}
@media (prefers-reduced-motion:reduce){*{animation:none!important;transition:none!important}}`;

const ICON = d => `<svg viewBox="0 0 24 24" width="20" height="20" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true"><path d="${d}"/></svg>`;
const HTML = `<div class="lcb">
<div class="lcb-panel" role="dialog" hidden>
 <div class="lcb-head"><b class="lcb-title"></b><button type="button" class="lcb-end" hidden></button><button type="button" class="lcb-min">${ICON('M6 9l6 6 6-6')}</button></div>
 <p class="lcb-off" hidden></p>
 <form class="lcb-form" hidden>
  <label><span></span><input name="name" required maxlength="80" autocomplete="name"></label>
  <label><span></span><input name="email" type="email" required maxlength="254" autocomplete="email"></label>
  <label><span></span><select name="topic"></select></label>
  <button type="submit"></button>
 </form>
 <div class="lcb-log" role="log" aria-live="polite" hidden></div>
 <div class="lcb-typing"></div>
 <div class="lcb-status" role="status"></div>
 <form class="lcb-compose" hidden><textarea name="text" rows="1"></textarea><button type="submit">${ICON('M22 2L11 13M22 2l-7 20-4-9-9-4z')}</button></form>
 <button type="button" class="lcb-new" hidden></button>
</div>
<button type="button" class="lcb-launcher" aria-expanded="false" hidden>${ICON('M21 12a8 8 0 0 1-11.6 7.1L4 20l1-4.6A8 8 0 1 1 21 12z')}<span></span></button>
</div>`;

const host = document.createElement('livechat-bridge');
host.id = 'livechat-bridge';
const root = host.attachShadow({ mode: 'open' });
root.innerHTML = HTML; // static markup, no data
try { // a constructed sheet is not blocked by a host page's CSP style-src
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(CSS);
  root.adoptedStyleSheets = [sheet];
} catch {
  root.prepend(Object.assign(document.createElement('style'), { textContent: CSS }));
}
const $ = s => root.querySelector(s);
const [W, panel, launcher, title, off, form, sel, log, typingEl, statusEl, compose, ta, endBtn, newBtn] =
  ['.lcb', '.lcb-panel', '.lcb-launcher', '.lcb-title', '.lcb-off', '.lcb-form', 'select', '.lcb-log',
   '.lcb-typing', '.lcb-status', '.lcb-compose', 'textarea', '.lcb-end', '.lcb-new'].map($);
const sendBtn = compose.lastChild, minBtn = $('.lcb-min');

const load = () => { try { return JSON.parse(localStorage.getItem(KEY)) } catch { return null } };
const put = o => { try { o ? localStorage.setItem(KEY, JSON.stringify(o)) : localStorage.removeItem(KEY) } catch {} };
// Read-modify-write, so tabs sharing the session don't undo each other's changes.
const upd = f => { const o = load(); if (o && tok && o.token == tok) { f(o); put(o) } };
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  e.className = cls;
  if (text != null) e.textContent = text;
  return e;
};
const fmt = (k, o = {}) => String(S[k] ?? '').replace(/\{(\w+)\}/g, (m, x) => o[x] ?? m);
const uid = () => crypto.randomUUID ? crypto.randomUUID()
  : [...crypto.getRandomValues(new Uint8Array(16))].map(b => b.toString(16).padStart(2, '0')).join('');
const status = t => { statusEl.textContent = t || '' };

let st = load(), tok = null, who = '', avail = false, squeues = [], cfgP, isOpen = false;
let active = false, ended = false, ws = null, ready = false, tries = 0, timer, pinger, lastRx = 0;
let lastSeq = 0, readSeq = 0, maxText = 0, startMsg, typT = 0, typOn = false, idle, typTimer;
const seen = new Set(), lines = new Map(), pend = new Map();

// ---- config and labels ---------------------------------------------------------------
function apply(c) {
  if (/^#([\da-f]{3}){1,2}$/i.test(c.color)) {
    const h = c.color.length < 5 ? c.color.replace(/\w/g, '$&$&') : c.color, n = parseInt(h.slice(1), 16);
    W.style.setProperty('--c', c.color);
    W.style.setProperty('--t', ((n >> 16) * 299 + (n >> 8 & 255) * 587 + (n & 255) * 114) / 1e3 > 165 ? '#111' : '#fff');
  }
  if (c.position) W.classList.toggle('lcb-left', c.position == 'left');
  if (c.strings) S = { ...S, ...c.strings };
  if (c.title) S.title = c.title;
  const labels = form.querySelectorAll('span');
  ['name', 'email', 'topic'].forEach((k, i) => { labels[i].textContent = S[k] });
  form.lastElementChild.textContent = S.start;
  title.textContent = S.title;
  panel.setAttribute('aria-label', S.title);
  off.textContent = S.offline;
  ta.placeholder = S.placeholder;
  ta.setAttribute('aria-label', S.placeholder);
  for (const [b, k] of [[sendBtn, 'send'], [minBtn, 'close']]) { b.setAttribute('aria-label', S[k]); b.title = S[k] }
  endBtn.textContent = S.end;
  newBtn.textContent = S.new;
  launcher.lastChild.textContent = tok || avail ? S.chat : S.leave;
}

const getConfig = () => cfgP ||= fetch(BASE + '/v1/config').then(r => r.json()).catch(() => ({})).then(c => {
  apply(c);
  maxText = c.max_text > 0 ? c.max_text : 0;
  if (maxText) ta.maxLength = maxText;
  const qs = Array.isArray(c.queues) ? c.queues : [];
  sel.replaceChildren(...qs.map(q => {
    const o = el('option', '', q.topic || q.name || q.id);
    o.value = q.id;
    o.disabled = squeues.some(x => x.id == q.id && x.open === false);
    return o;
  }));
  sel.parentNode.hidden = qs.length < 2;
});

// ---- panel and views -----------------------------------------------------------------
function view() {
  const v = active || ended ? 'chat' : avail ? 'form' : 'off';
  form.hidden = v != 'form';
  off.hidden = v != 'off';
  log.hidden = compose.hidden = v != 'chat';
  endBtn.hidden = !active;
  newBtn.hidden = !ended;
  ta.disabled = sendBtn.disabled = ended;
  log.scrollTop = log.scrollHeight;
}

function setOpen(o) {
  isOpen = o;
  panel.hidden = !o;
  W.classList.toggle('lcb-open', o);
  launcher.setAttribute('aria-expanded', o);
  upd(s => { s.open = o });
  if (o) getConfig().then(() => {
    launcher.classList.remove('lcb-unread');
    view();
    markRead();
    (form.hidden ? ta : form.elements[0]).focus();
  });
}

// ---- log -----------------------------------------------------------------------------
// Lines are kept in seq order; pending (unacked) visitor lines always stay at the bottom.
function place(d, seq) {
  const stick = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
  d.dataset.seq = seq || '';
  let ref = null;
  if (!d.classList.contains('lcb-pending')) {
    for (const c of log.children) if (c.classList.contains('lcb-pending') || seq && +c.dataset.seq > seq) { ref = c; break }
  }
  log.insertBefore(d, ref);
  if (stick || !ref) log.scrollTop = log.scrollHeight;
}

function line(kind, text, name, seq, ts) {
  const d = el('div', 'lcb-msg lcb-' + kind);
  if (name && kind != 'system') d.append(el('div', 'lcb-name', name));
  d.append(el('div', 'lcb-text', text));
  if (ts) d.title = new Date(ts * 1000).toLocaleString();
  place(d, seq);
  return d;
}

// Remember a seq; true when it was already seen (a replayed or echoed frame).
function saw(n) {
  if (!n) return false;
  if (seen.has(n)) return true;
  seen.add(n);
  if (n > lastSeq) {
    lastSeq = n;
    upd(o => { o.seq = Math.max(o.seq || 0, n) });
  }
  return false;
}

function unpend(id) {
  pend.delete(id);
  upd(o => { o.pending = (o.pending || []).filter(p => p.client_id != id) });
}

function acked(id, seq) {
  saw(seq);
  const d = lines.get(id);
  if (pend.has(id)) unpend(id);
  if (d && d.classList.contains('lcb-pending')) {
    d.classList.remove('lcb-pending');
    place(d, seq);
  }
}

function typing(name) {
  clearTimeout(typTimer);
  typingEl.textContent = name ? fmt('typing', { name }) : '';
  if (name) typTimer = setTimeout(typing, 10e3);
}

function markRead() {
  if (!isOpen || !ready || document.hidden || lastSeq <= readSeq) return;
  readSeq = lastSeq;
  tx({ type: 'read', seq: lastSeq });
  upd(o => { o.read = lastSeq });
}

// ---- socket --------------------------------------------------------------------------
const tx = o => { if (ws && ws.readyState == 1) ws.send(JSON.stringify(o)) };
const flush = () => { for (const [client_id, text] of pend) tx({ type: 'message', client_id, text }) };

function connect() {
  clearTimeout(timer);
  if (ws || !active) return;
  const s = ws = new WebSocket(WSURL);
  s.onopen = () => {
    // After a page load lastSeq is 0, so the server replays the whole conversation.
    tx(tok ? { type: 'resume', token: tok, after: lastSeq } : startMsg);
    lastRx = Date.now();
    clearInterval(pinger);
    pinger = setInterval(() => Date.now() - lastRx > 60e3 ? lost(s) : tx({ type: 'ping' }), 25e3);
  };
  s.onmessage = e => {
    if (ws != s) return;
    lastRx = Date.now();
    let m;
    try { m = JSON.parse(e.data) } catch { return }
    if (m && typeof m == 'object') onFrame(m);
  };
  s.onclose = s.onerror = () => lost(s);
}

function hang() {
  const s = ws;
  ws = null;
  ready = false;
  clearInterval(pinger);
  clearTimeout(timer);
  if (s) { s.onclose = s.onerror = s.onmessage = null; s.close() }
}

function lost(s) {
  if (ws != s) return;
  hang();
  if (!active) return;
  status(S.reconnecting);
  timer = setTimeout(connect, Math.min(15e3, 500 * 2 ** Math.min(tries++, 5)) * (0.8 + Math.random() * 0.4));
}

function onFrame(m) {
  switch (m.type) {
    case 'started':
      tok = m.token;
      st = { token: tok, conversation: m.conversation, seq: lastSeq, read: 0, open: isOpen, name: who,
        pending: [...pend].map(([client_id, text]) => ({ client_id, text })) };
      put(st);
      // fall through
    case 'resumed':
      ready = true;
      tries = 0;
      status('');
      flush();
      break;
    case 'ack':
      acked(m.client_id, m.seq);
      break;
    case 'message':
      if (m.client_id && lines.has(m.client_id)) { acked(m.client_id, m.seq); break }
      if (saw(m.seq)) break;
      {
        const k = m.from == 'agent' ? 'agent' : m.from == 'visitor' ? 'visitor' : 'system';
        const d = line(k, m.text, m.name, m.seq, m.ts);
        if (m.client_id) lines.set(m.client_id, d);
        if (k == 'agent') {
          typing('');
          if (!isOpen && m.seq > readSeq) launcher.classList.add('lcb-unread');
        }
      }
      break;
    case 'typing':
      typing(m.active && m.name);
      break;
    case 'agent':
      if (!saw(m.seq) && S[m.event]) line('system', fmt(m.event, m), 0, m.seq, m.ts);
      if (m.event == 'joined') status('');
      break;
    case 'queue':
      status(fmt('queue', m));
      break;
    case 'ended':
      if (!saw(m.seq)) line('system', S.ended, 0, m.seq, m.ts);
      finish();
      break;
    case 'error':
      onError(m);
  }
  markRead();
}

function onError(m) {
  const c = m.code;
  if (c == 'bad_token' || !tok) { // the session is gone, or starting failed: back to the form
    reset();
    if (c != 'bad_token') status(m.message || S.error);
    return;
  }
  // Frames are answered in order, so a refused line is the oldest one still pending.
  const id = pend.keys().next().value;
  if ((c == 'too_long' || c == 'empty') && id) {
    if (c == 'too_long' && !ta.value) ta.value = pend.get(id);
    lines.get(id)?.remove();
    lines.delete(id);
    unpend(id);
  }
  if (c == 'rate_limited') { clearTimeout(timer); timer = setTimeout(flush, 3e3) } // same client_id: no duplicates
  status(m.message || S.error);
}

function finish() {
  active = false;
  ended = true;
  pend.clear();
  upd(o => { o.ended = true; o.pending = [] });
  typing('');
  status('');
  view();
}

function reset() {
  hang();
  put(null);
  tok = st = null;
  active = ended = false;
  lastSeq = readSeq = 0;
  log.replaceChildren();
  seen.clear();
  lines.clear();
  pend.clear();
  typing('');
  status('');
  view();
  apply({});
}

// ---- visitor input -------------------------------------------------------------------
form.onsubmit = e => {
  e.preventDefault();
  const v = n => form.elements[n].value.trim();
  if (!v('name')) return;
  who = v('name');
  startMsg = { type: 'start', visitor: { name: who, email: v('email') }, topic: sel.value || null,
    page: { url: location.href, title: document.title, referrer: document.referrer },
    lang: OPT.lang || navigator.language };
  active = true;
  tries = 0;
  view();
  connect();
  ta.focus();
};

function stopTyping() {
  clearTimeout(idle);
  if (typOn) { typOn = false; tx({ type: 'typing', active: false }) }
}

function send(e) {
  e?.preventDefault();
  const text = ta.value.trim();
  if (!text || !active || (maxText && text.length > maxText)) return;
  ta.value = '';
  stopTyping();
  status('');
  const id = uid();
  pend.set(id, text);
  upd(o => { (o.pending ||= []).push({ client_id: id, text }) });
  lines.set(id, line('visitor lcb-pending', text, who));
  if (ready) tx({ type: 'message', client_id: id, text });
}
compose.onsubmit = send;

ta.onkeydown = e => {
  if (e.key == 'Enter' && !e.shiftKey && !e.isComposing) send(e);
};
ta.oninput = () => {
  if (!ready) return;
  if (Date.now() - typT > 3e3) { typT = Date.now(); typOn = true; tx({ type: 'typing', active: true }) }
  clearTimeout(idle);
  idle = setTimeout(stopTyping, 4e3);
};

launcher.onclick = () => setOpen(!isOpen);
minBtn.onclick = () => { setOpen(false); launcher.focus() };
panel.onkeydown = e => { if (e.key == 'Escape') minBtn.onclick() };
endBtn.onclick = () => ready ? tx({ type: 'end' }) : finish();
newBtn.onclick = () => { reset(); form.elements[0].focus() };
addEventListener('online', () => { if (active && !ws) { tries = 0; connect() } });
document.addEventListener('visibilitychange', markRead);

// ---- page load: one status request; a stored session reconnects at once ----------------
const go = () => document.body.append(host);
document.body ? go() : addEventListener('DOMContentLoaded', go);

if (st?.token && !st.ended) {
  tok = st.token;
  who = st.name || '';
  readSeq = st.read || 0;
  active = true;
  for (const { client_id, text } of st.pending || []) {
    pend.set(client_id, text);
    lines.set(client_id, line('visitor lcb-pending', text, who));
  }
  getConfig().then(() => { setOpen(!!st?.open); connect() });
} else {
  put(null);
  st = null;
}
fetch(BASE + '/v1/status').then(r => r.json()).then(s => {
  avail = !!s.available;
  squeues = Array.isArray(s.queues) ? s.queues : [];
  apply(s);
}).catch(() => {}).finally(() => {
  apply({});
  launcher.hidden = false;
  if (isOpen) view();
});
})();
