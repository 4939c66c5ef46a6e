// livechat-bridge widget. Untrusted text only ever goes through textContent.
(() => {
'use strict';
const me = document.currentScript; // null after this first run
if (!me || document.getElementById('livechat-bridge')) return;
const src = new URL(me.src, location.href);
const BASE = src.origin + src.pathname.replace(/\/[^/]*$/, '');
const KEY = 'lcb:' + BASE;
const OPT = window.LivechatBridge || {};
let S = {
  title: 'Chat with us', chat: 'Chat with us', leave: 'Leave a message', start: 'Start chat',
  name: 'Your name', email: 'Email', topic: 'Topic', send: 'Send',
  placeholder: 'Write a message…', typing: '{name} is typing…', joined: '{name} joined',
  left: '{name} left', queue: 'You are number {position} in line', offline: 'We are offline right now.',
  ended: 'The chat has ended.', reconnecting: 'Reconnecting…', error: 'Something went wrong.',
  end: 'End chat', new: 'New chat', close: 'Minimize',
};

const CSS = `:host{all:initial}
.lcb{all:initial;--c:#2563eb;--t:#fff;position:fixed;z-index:2147483000;bottom:20px;right:20px;
 display:flex;flex-direction:column;align-items:flex-end;gap:12px;color:#1f2328;font:14px/1.45 system-ui,sans-serif}
.lcb-left{right:auto;left:20px;align-items:flex-start}
*{box-sizing:border-box}
[hidden]{display:none!important}
button,input,select,textarea{font:inherit;color:inherit;margin:0;border:0;border-radius:8px}
svg{width:20px;height:20px;fill:none;stroke:currentColor;stroke-width:2;stroke-linejoin:round}
button{display:flex;align-items:center;justify-content:center;gap:8px;padding:10px 14px;background:var(--c);color:var(--t);font-weight:600;cursor:pointer}
.lcb-launcher{position:relative;height:52px;min-width:52px;padding:0 18px;border-radius:26px;box-shadow:0 4px 14px #0004}
.lcb-open .lcb-launcher{padding:0;gap:0}
.lcb-open .lcb-launcher span{font-size:0}
.lcb-visitor .lcb-name{display:none}
.lcb-panel{display:flex;flex-direction:column;width:340px;height:480px;max-width:calc(100vw - 24px);max-height:calc(100vh - 100px);
 background:#fff;border-radius:14px;overflow:hidden;box-shadow:0 10px 40px #0004;animation:lcb-in .2s ease-out}
@keyframes lcb-in{from{opacity:0;transform:translateY(12px)}}
.lcb-head{display:flex;align-items:center;gap:4px;padding:10px 12px 10px 16px;background:var(--c);color:var(--t)}
.lcb-title{flex:1;font-size:16px}
.lcb-head button{padding:5px 8px;background:none;font-weight:400;font-size:13px}
.lcb-off{padding:24px;text-align:center;color:#57606a}
.lcb-form{display:flex;flex-direction:column;gap:12px;padding:16px;overflow:auto}
label{display:flex;flex-direction:column;gap:4px;font-size:13px;color:#57606a}
input,select,textarea{width:100%;padding:8px 10px;border:1px solid #d0d7de;background:#fff}
.lcb-log{flex:1;display:flex;flex-direction:column;gap:8px;padding:12px;overflow-y:auto;background:#f6f8fa}
.lcb-msg{display:flex;flex-direction:column;max-width:82%;align-self:flex-start}
.lcb-text{padding:8px 12px;border-radius:16px 16px 16px 4px;background:#fff;border:1px solid #e1e4e8;white-space:pre-wrap;overflow-wrap:anywhere}
.lcb-visitor{align-self:flex-end}
.lcb-visitor .lcb-text{background:var(--c);color:var(--t);border-radius:16px 16px 4px 16px}
.lcb-pending{opacity:.55}
.lcb-name{margin:0 6px 2px;font-size:12px;color:#57606a}
.lcb-system{align-self:center;text-align:center;font-size:12px;color:#6e7781}
.lcb-system .lcb-text{padding:0;border:0;background:none}
.lcb-typing,.lcb-status{padding:4px 14px;font-size:12px;color:#57606a;background:#f6f8fa}
.lcb-status{background:#fff8c5;color:#4d2d00}
.lcb-typing:empty,.lcb-status:empty{display:none}
.lcb-compose{display:flex;align-items:flex-end;gap:8px;padding:10px;border-top:1px solid #e1e4e8}
textarea{field-sizing:content;min-height:40px;max-height:120px;resize:none}
.lcb-compose button{flex:none;width:40px;height:40px;padding:0;border-radius:50%}
:disabled{opacity:.5;cursor:default}
.lcb-new{margin:0 10px 10px}
@media (prefers-reduced-motion:reduce){*{animation:none!important}}`;

const ICON = d => `<svg viewBox="0 0 24 24" aria-hidden="true"><path d="${d}"/></svg>`;
const HTML = `<div class="lcb">
<div class="lcb-panel" role="dialog" aria-labelledby="t" hidden>
 <div class="lcb-head"><b class="lcb-title" id="t" data-s="title"></b><button type="button" class="lcb-end" data-s="end" hidden></button><button type="button" class="lcb-min" data-a="close">${ICON('M6 9l6 6 6-6')}</button></div>
 <p class="lcb-off" data-s="offline" hidden></p>
 <form class="lcb-form" hidden>
  <label><span data-s="name"></span><input name="name" required maxlength="80" autocomplete="name"></label>
  <label><span data-s="email"></span><input name="email" type="email" required maxlength="254" autocomplete="email"></label>
  <label><span data-s="topic"></span><select name="topic"></select></label>
  <button type="submit" data-s="start"></button>
 </form>
 <div class="lcb-log" role="log" aria-live="polite" hidden></div>
 <div class="lcb-typing"></div>
 <div class="lcb-status" role="status"></div>
 <form class="lcb-compose" hidden><textarea name="text" rows="1" data-a="placeholder"></textarea><button type="submit" data-a="send">${ICON('M22 2L11 13M22 2l-7 20-4-9-9-4z')}</button></form>
 <button type="button" class="lcb-new" data-s="new" hidden></button>
</div>
<button type="button" class="lcb-launcher" aria-expanded="false" hidden>${ICON('M21 12a8 8 0 0 1-11.6 7.1L4 20l1-4.6A8 8 0 1 1 21 12z')}<span data-s="launch"></span></button>
</div>`;

const el = (tag, className, textContent = '') => Object.assign(document.createElement(tag), { className, textContent });
const host = Object.assign(el('livechat-bridge'), { id: 'livechat-bridge' });
const root = host.attachShadow({ mode: 'open' });
root.innerHTML = HTML;
try { // not subject to the page's CSP, unlike <style>
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(CSS);
  root.adoptedStyleSheets = [sheet];
} catch { root.prepend(el('style', '', CSS)) }
const $ = s => root.querySelector(s);
const [W, panel, launcher, off, form, sel, log, typingEl, statusEl, compose, ta, endBtn, newBtn, minBtn] =
  ['.lcb', '.lcb-panel', '.lcb-launcher', '.lcb-off', '.lcb-form', 'select', '.lcb-log', '.lcb-typing',
   '.lcb-status', '.lcb-compose', 'textarea', '.lcb-end', '.lcb-new', '.lcb-min'].map($);

const load = () => { try { return JSON.parse(localStorage.getItem(KEY)) } catch { return null } };
const put = o => { try { o ? localStorage.setItem(KEY, JSON.stringify(o)) : localStorage.removeItem(KEY) } catch {} };
const upd = f => { const o = load(); if (o && tok && o.token == tok) { f(o); put(o) } };
const fmt = (k, o) => (S[k] || '').replace(/\{(\w+)\}/g, (m, x) => o[x] ?? m);
const uid = () => crypto.randomUUID?.() || Date.now().toString(16) + Math.random().toString(16).slice(2);
const status = t => { statusEl.textContent = t || '' };

let st = load(), tok, who = '', avail = false, cfgP, isOpen = false, active = false, ended = false;
let ws, ready = false, tries = 0, timer, pinger, lastRx, lastSeq = 0, readSeq = 0, startMsg;
let typT = 0, typOn = false, idle, typTimer, readTimer;
const seen = new Set(), lines = new Map(), pend = new Map();

function apply(c) {
  if (/^#[\da-f]{6}$/i.test(c.color)) {
    const n = parseInt(c.color.slice(1), 16);
    W.style.setProperty('--c', c.color);
    W.style.setProperty('--t', ((n >> 16) * 299 + (n >> 8 & 255) * 587 + (n & 255) * 114) / 1e3 > 165 ? '#111' : '#fff');
  }
  if (c.position) W.classList.toggle('lcb-left', c.position == 'left');
  S = { ...S, ...c.strings };
  S.launch = tok || avail ? S.chat : S.leave;
  for (const e of root.querySelectorAll('[data-s]')) e.textContent = S[e.dataset.s];
  for (const e of root.querySelectorAll('[data-a]')) e.setAttribute('aria-label', e[e == ta ? 'placeholder' : 'title'] = S[e.dataset.a]);
}

const getConfig = () => cfgP = cfgP || fetch(BASE + '/v1/config').then(r => r.json()).catch(() => ({})).then(c => {
  apply(c);
  if (c.max_text > 0) ta.maxLength = c.max_text;
  const qs = c.queues || [];
  sel.replaceChildren(...qs.map(q => new Option(q.topic || q.name || q.id, q.id)));
  sel.parentNode.hidden = qs.length < 2;
});

function view() {
  const v = active || ended ? 'chat' : avail ? 'form' : 'off';
  form.hidden = v != 'form';
  off.hidden = v != 'off';
  log.hidden = compose.hidden = v != 'chat';
  endBtn.hidden = !active;
  newBtn.hidden = !ended;
  for (const e of compose.elements) e.disabled = ended;
  log.scrollTop = 1e9;
}

function setOpen(o) {
  isOpen = o;
  panel.hidden = !o;
  W.classList.toggle('lcb-open', o);
  launcher.setAttribute('aria-expanded', o);
  upd(s => { s.open = o });
  if (o) getConfig().then(() => {
    view();
    markRead();
    (form.hidden ? ta : form.elements[0]).focus();
  });
}

// seq order; pending lines last
function place(d, seq) {
  d.dataset.seq = seq || '';
  let ref = null;
  if (!d.classList.contains('lcb-pending')) {
    for (const c of log.children) if (c.classList.contains('lcb-pending') || seq && c.dataset.seq > seq) { ref = c; break }
  }
  log.insertBefore(d, ref);
  log.scrollTop = 1e9;
}

function line(kind, text, name, seq, ts) {
  const d = el('div', 'lcb-msg lcb-' + kind);
  if (name && kind != 'system') d.append(el('div', 'lcb-name', name));
  d.append(el('div', 'lcb-text', text));
  if (ts) d.title = new Date(ts * 1e3).toLocaleString();
  place(d, seq);
  return d;
}

// true for a seq seen before
function saw(n) {
  if (!n || seen.has(n)) return !!n;
  seen.add(n);
  if (n > lastSeq) {
    lastSeq = n;
    upd(o => { o.seq = Math.max(o.seq || 0, n) });
  }
}

function unpend(id) {
  pend.delete(id);
  upd(o => { delete o.pending?.[id] });
}

function acked(id, seq) {
  saw(seq);
  const d = lines.get(id);
  if (pend.has(id)) unpend(id);
  if (d?.classList.contains('lcb-pending')) {
    d.classList.remove('lcb-pending');
    place(d, seq);
  }
}

function typing(name) {
  clearTimeout(typTimer);
  typingEl.textContent = name ? fmt('typing', { name }) : '';
  if (name) typTimer = setTimeout(typing, 1e4);
}

function markRead() { // debounced, for replays
  clearTimeout(readTimer);
  if (isOpen && ready && !document.hidden && lastSeq > readSeq) readTimer = setTimeout(() => tx({ type: 'read', seq: readSeq = lastSeq }), 1e3);
}

const tx = o => { if (ws?.readyState == 1) ws.send(JSON.stringify(o)) };
const flush = () => { for (const [client_id, text] of pend) tx({ type: 'message', client_id, text }) };

function connect() {
  if (ws || !active) return;
  const s = ws = new WebSocket(BASE.replace(/^http/, 'ws') + '/v1/ws');
  s.onopen = () => {
    // lastSeq is 0 after a page load: the server replays it all
    tx(tok ? { type: 'resume', token: tok, after: lastSeq } : startMsg);
    lastRx = Date.now();
    pinger = setInterval(() => Date.now() - lastRx > 6e4 ? lost(s) : tx({ type: 'ping' }), 25e3);
  };
  s.onmessage = e => {
    lastRx = Date.now();
    try { var m = JSON.parse(e.data) } catch {}
    if (ws == s && m?.type) onFrame(m);
  };
  s.onclose = s.onerror = () => lost(s);
}

function hang() {
  const s = ws;
  ws = null;
  ready = false;
  clearInterval(pinger);
  clearTimeout(timer);
  s?.close();
}

function lost(s) {
  if (ws != s) return;
  hang();
  if (!active) return;
  status(S.reconnecting);
  timer = setTimeout(connect, Math.min(15e3, 500 * 2 ** tries++) * (0.8 + Math.random() * 0.4));
}

function onFrame(m) {
  switch (m.type) {
    case 'started':
      tok = m.token;
      put(st = { token: tok, conversation: m.conversation, seq: lastSeq, open: isOpen, name: who,
        pending: Object.fromEntries(pend) });
      // fall through
    case 'resumed':
      ready = true;
      tries = 0;
      status();
      flush();
      break;
    case 'ack':
      acked(m.client_id, m.seq);
      break;
    case 'message':
      if (lines.has(m.client_id)) acked(m.client_id, m.seq);
      else if (!saw(m.seq)) {
        const k = m.from == 'agent' || m.from == 'visitor' ? m.from : 'system';
        const d = line(k, m.text, m.name, m.seq, m.ts);
        if (m.client_id) lines.set(m.client_id, d);
        if (k == 'agent') typing();
      }
      break;
    case 'typing':
      typing(!ended && m.active && m.name);
      break;
    case 'agent':
      if (!saw(m.seq) && S[m.event]) line('system', fmt(m.event, m), 0, m.seq, m.ts);
      if (m.event == 'joined') status();
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
  const code = m.code, text = m.message || S.error;
  if (code == 'rate_limited' && !ready) return lost(ws); // start/resume refused: retry later
  if (code == 'bad_token' || !tok) {
    reset();
    if (code != 'bad_token') status(text);
    return;
  }
  if (!ready) return lost(ws);
  if (code == 'ended') return finish();
  // else the oldest pending line: errors come in order
  const id = m.client_id || pend.keys().next().value;
  if (pend.has(id) && (code == 'too_long' || code == 'empty')) {
    if (code == 'too_long' && !ta.value) ta.value = pend.get(id);
    lines.get(id).remove();
    lines.delete(id);
    unpend(id);
  }
  if (code == 'rate_limited' || code == 'internal') timer = setTimeout(flush, 3e3);
  status(text);
}

function finish() {
  active = false;
  ended = true;
  pend.clear();
  upd(o => { o.ended = true; o.pending = {} });
  typing();
  status();
  view();
}

function reset() {
  hang();
  put(tok = st = null);
  active = ended = false;
  lastSeq = readSeq = 0;
  log.replaceChildren();
  seen.clear();
  lines.clear();
  pend.clear();
  typing();
  status();
  view();
  apply({});
}

form.onsubmit = e => {
  e.preventDefault();
  const v = n => form.elements[n].value.trim();
  if (!(who = v('name'))) return;
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
  if (typOn) tx({ type: 'typing', active: typOn = false });
}

compose.onsubmit = e => {
  e.preventDefault();
  const text = ta.value.trim();
  if (!text || !active) return;
  ta.value = '';
  stopTyping();
  if (ready) status();
  const id = uid();
  pend.set(id, text);
  upd(o => { (o.pending = o.pending || {})[id] = text });
  lines.set(id, line('visitor lcb-pending', text, who));
  if (ready) tx({ type: 'message', client_id: id, text });
};
ta.onkeydown = e => { if (e.key == 'Enter' && !e.shiftKey && !e.isComposing) compose.onsubmit(e) };
ta.oninput = () => {
  if (!ready) return;
  if (Date.now() - typT > 3e3) { typT = Date.now(); tx({ type: 'typing', active: typOn = true }) }
  clearTimeout(idle);
  idle = setTimeout(stopTyping, 4e3);
};

launcher.onclick = () => setOpen(!isOpen);
minBtn.onclick = () => { setOpen(false); launcher.focus() };
panel.onkeydown = e => { if (e.key == 'Escape') minBtn.onclick() };
endBtn.onclick = () => ready ? tx({ type: 'end' }) : finish();
newBtn.onclick = () => { reset(); form.elements[0].focus() };
document.addEventListener('visibilitychange', markRead);

const go = () => document.body.append(host);
document.body ? go() : addEventListener('DOMContentLoaded', go);
if (st?.token && !st.ended) {
  tok = st.token;
  who = st.name || '';
  active = true;
  for (const [id, text] of Object.entries(st.pending || {})) {
    pend.set(id, text);
    lines.set(id, line('visitor lcb-pending', text, who));
  }
  getConfig().then(() => { setOpen(!!st?.open); connect() });
} else put(st = null);
fetch(BASE + '/v1/status').then(r => r.json()).then(s => {
  avail = !!s.available;
  apply(s);
}).catch(() => {}).finally(() => {
  apply({});
  launcher.hidden = false;
  if (isOpen) view();
});
})();
