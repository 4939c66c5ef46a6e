'use strict';
// The widget's panel, loaded on the first click. Budget: loader and panel together at most
// 12 KB gzipped as served (tests/unit/test_widget_size.py). The minifier (bridge/web/assets.py)
// only drops comments, spaces and the indented line breaks in template literals: names, and
// the CSS and markup in the templates, go out as written otherwise, so names are short and
// attributes unquoted.
window.LiveChat?._boot?.(({ BASE, KEY, get, $, can, OPT, root, W, launcher, sheet, emit, st, load, mk, ICON, status: stat, badge, opened }) => {
sheet(`input,select,textarea{width:100%;margin:0;padding:8px 10px;border:1px solid var(--line);border-radius:8px;font:inherit;color:var(--fg);background:var(--bg)}
  ::placeholder{color:var(--mute);opacity:1}.lcb-open .lcb-launcher{padding:0;gap:0;font-size:0}
  .lcb-panel{display:flex;flex-direction:column;width:min(340px,100vw - 24px);height:min(480px,100vh - 100px);background:var(--bg);border-radius:14px;overflow:hidden;box-shadow:0 10px 40px #0004;animation:lcb-in .2s ease-out}
  @keyframes lcb-in{from{opacity:0;translate:0 12px}}
  .lcb-head{display:flex;align-items:center;gap:2px;padding:10px 8px;padding-inline-start:16px;background:var(--c);color:var(--t)}
  .lcb-title{flex:1;font-size:16px}
  .lcb-head button{padding:5px;background:none;font-weight:400;font-size:13px}
  p{margin:0;color:var(--mute)}p:empty{display:none}
  .lcb-confirm{display:flex;align-items:center;gap:8px;padding:8px 12px}.lcb-confirm span{flex:1}
  .lcb-confirm button{padding:4px 10px}.lcb-offline textarea{min-height:64px;max-height:150px}
  .lcb-form,.lcb-offline{display:flex;flex-direction:column;gap:10px;padding:16px;overflow:auto}
  label{display:grid;gap:4px;font-size:13px;color:var(--mute)}
  .lcb-consent{display:flex;align-items:flex-start;gap:8px}
  .lcb-consent input{width:24px;height:24px;flex:none}
  .lcb-log{flex:1;display:flex;flex-direction:column;gap:8px;padding:12px;overflow-y:auto;background:var(--bg2)}
  .lcb-msg{display:flex;flex-direction:column;max-width:82%;align-self:flex-start}
  .lcb-text{padding:8px 12px;border-radius:16px;border-end-start-radius:4px;background:var(--bg);border:1px solid var(--line);white-space:pre-wrap;overflow-wrap:anywhere}
  .lcb-text a{color:inherit}.lcb-visitor{align-self:flex-end}
  .lcb-visitor .lcb-text{background:var(--c);color:var(--t);border-radius:16px;border-end-end-radius:4px}
  .lcb-del{color:var(--mute)}.lcb-eds{display:flex;align-self:flex-end}
  .lcb-pending .lcb-time{visibility:hidden}
  .lcb-name,.lcb-time{margin:2px 6px;font-size:12px;color:var(--mute)}
  .lcb-visitor .lcb-time{align-self:flex-end}
  .lcb-system{align-self:center;text-align:center;font-size:12px;color:var(--mute)}
  .lcb-system .lcb-text{padding:0;border:0;background:none}
  .lcb-typing,.lcb-status,.lcb-peek{padding:4px 14px;font-size:12px;color:var(--mute);background:var(--bg2)}
  .lcb-status,.lcb-confirm{background:var(--warn);color:var(--warnfg)}div:empty{padding:0}
  .lcb-bar{display:flex;align-items:flex-end;gap:8px;padding:10px;border-top:1px solid var(--line)}
  .lcb-compose{display:contents}
  textarea{field-sizing:content;min-height:40px;max-height:120px;resize:none}
  .lcb-bar button{flex:none;width:40px;height:40px;padding:0;border-radius:50%}
  .lcb-bar .lcb-att{background:none;color:var(--mute)}
  img{display:block;max-width:100%;max-height:240px}
  .lcb-text button{padding:0;color:inherit;text-align:start}progress{width:100%}
  :disabled{opacity:.5;cursor:default}.lcb-new{margin:0 10px 10px}
  .lcb-link{align-self:center;padding:2px 6px;background:none;color:var(--mute);font-weight:400;text-decoration:underline}
  .lcb-ticket{margin:auto;max-width:80%;font-size:14px;outline:0}.lcb-ticket b{white-space:nowrap}
  .lcb-survey,.lcb-transcript,.lcb-callback{flex:none;display:grid;gap:6px;padding:8px 10px;border:1px solid var(--line);border-radius:12px;background:var(--bg)}
  .lcb-panel>.lcb-transcript{border-width:1px 0 0;border-radius:0}
  .lcb-survey p{text-align:center;font-weight:600;color:var(--fg)}.lcb-rates{display:flex;gap:4px}
  .lcb-rate{flex:1;padding:4px;background:none;color:var(--mute);border-radius:10px}
  .lcb-rate svg{width:30px;height:30px}
  .lcb-rate:hover,.lcb-rate[aria-pressed=true]{color:var(--fg)}
  .lcb-rate[aria-pressed=true]{box-shadow:inset 0 0 0 2px var(--fg)}
  .lcb-survey textarea{min-height:36px;max-height:80px;padding:6px 10px}
  .lcb-rate-send,.lcb-download,.lcb-callback button{padding:6px}
  .lcb-download{background:var(--bg2);color:var(--fg);border:1px solid var(--line)}
  .lcb-mail{display:flex;gap:6px}.lcb-mail input{flex:1;min-width:0;padding:5px 8px}
  .lcb-mail button{padding:5px 10px}
  .lcb-panel :focus-visible{outline:2px solid var(--fg);outline-offset:1px;box-shadow:none}
  .lcb-head :focus-visible{outline-color:var(--t)}@media (max-width:480px){.lcb-open{inset:0}
  .lcb-open .lcb-panel{width:100vw;height:100dvh;border-radius:0}
  .lcb-open .lcb-launcher{display:none}input,select,textarea{font-size:16px}}
  @media (prefers-reduced-motion:reduce){*{animation:none!important;transition:none!important}}`);

const RATE = `<p></p><div class=lcb-rates role=group>${'12345'.replace(/./g, i =>
  `<button type="button" class="lcb-rate" data-rating="${i}" aria-label="${i} / 5" aria-pressed="false">${ICON(`M2 12a10 10 0 0 0 20 0a10 10 0 0 0-20 0M9 9v1M15 9v1M8 16Q12 ${10 + i * 2} 16 16`)}</button>`)}</div><textarea name=comment rows=1 maxlength=1000 data-a=comment></textarea><button type=submit class=lcb-rate-send data-s=rate disabled></button>`;
const CALL = `<input name=phone type=tel required maxlength=40 autocomplete=tel data-a=phone><input name=when type=text maxlength=100 data-a=when><button type=submit data-s=callme></button>`;
const WHO = `
  <label class=lcb-who><span data-s=name></span><input name=name required maxlength=80 autocomplete=name></label><label class=lcb-who><span data-s=email></span><input name=email type=email required maxlength=254 autocomplete=email></label><p class=lcb-verified></p><label><span data-s=topic></span><select name=topic></select></label>`;
W.insertAdjacentHTML('afterbegin', `<div class=lcb-panel role=dialog aria-labelledby=t hidden>
  <div class=lcb-head><b class=lcb-title id=t data-s=title></b>
  <button class=lcb-tx data-a=transcript aria-expanded=false hidden>${ICON('M14 2H4v20h16V8zM14 2v6h6M8 13h8M8 17h8')}</button>
  <button class=lcb-end data-s=end hidden></button>
  <button class=lcb-min data-a=close>${ICON('M6 9l6 6 6-6')}</button></div>
  <div class=lcb-confirm hidden><span data-s=end_confirm></span><button data-s=end></button>
  <button class=lcb-link data-s=end_keep></button></div>
  <form class=lcb-form hidden>${WHO}<label class=lcb-consent hidden>
  <input name=consent type=checkbox><span></span></label><p class=lcb-off></p>
  <button type=submit data-s=start></button>
  <button type=button class="lcb-link lcb-to-offline" data-s=or_leave></button></form>
  <form class=lcb-offline hidden><p class=lcb-off>
  </p>${WHO}<textarea name=text required rows=3 data-a=placeholder></textarea>
  <button type=submit data-s=leave></button>
  <button type=button class="lcb-link lcb-to-chat" data-s=chat></button></form>
  <div class=lcb-log role=log aria-live=polite hidden><span class=lcb-eds>
  <button class=lcb-link data-s=edit></button><button class=lcb-link data-s=delete></button>
  </span></div><div class=lcb-transcript hidden><button class=lcb-download data-s=download>
  </button><form class=lcb-mail><input name=mail type=email readonly maxlength=254 data-a=email>
  <button type=submit data-s=mail></button></form></div><div class=lcb-typing role=status></div>
  <div class=lcb-status role=status></div>
  <button class="lcb-link lcb-instead" data-s=instead hidden></button>
  <button class="lcb-link lcb-extend" data-s=idle_extend hidden></button>
  <p class=lcb-peek data-s=peek hidden></p><div class="lcb-confirm lcb-editing" hidden>
  <span data-s=editing></span><button class=lcb-link data-s=cancel></button></div>
  <div class=lcb-bar hidden>
  <button class=lcb-att data-a=attach hidden>${ICON('M21 11l-9 9a6 6 0 0 1-8-8l9-9a4 4 0 0 1 6 6l-9 9a2 2 0 0 1-3-3l8-8')}</button>
  <input type=file multiple hidden><form class=lcb-compose>
  <textarea name=text rows=1 data-a=placeholder></textarea>
  <button type=submit data-a=send>${ICON('M22 2L11 13M22 2l-7 20-4-9-9-4z')}</button></form></div>
  <button class=lcb-new data-s=new hidden></button></div>`);

const el = (tag, className = '', textContent = '', o) => mk(tag, { className, textContent, ...o });
const btn = (c, t, onclick) => el('button', c, t, { onclick }); // never in a form: no type
const [panel, form, offF, log, tyE, stE, comp, endB, newB, minB, txB, txP, dlB, mailF,
  instB, cnf, formP, agree, extB, bar, att, peekP, toC, edBar, eds] = `panel form offline log typing status compose
  end new min tx transcript download mail instead confirm off consent extend bar att peek to-chat editing eds`.split(/\s+/).map(c => $('.lcb-' + c));
const ta = comp.text, picker = att.nextSibling, offP = offF.firstChild, mailI = mailF.mail, sel = form.topic, O = offF.elements, leaveB = O[O.length - 2];

const put = o => { try { o ? localStorage.setItem(KEY, JSON.stringify(o)) : localStorage.removeItem(KEY) } catch {} };
const upd = f => { const o = load(); if (o && tok && o.token == tok) { f(o); put(o) } };
let S = {}, LANG, FILES;
const fmt = (k, o) => (S[k] || '').replace(/\{(\w+)\}/g, (m, x) => o[x] ?? m);
const uid = () => Math.random().toString(36).slice(2) + Date.now(); // unique in the chat, not secret
const tell = t => { stE.textContent = t || wline }; // the place in line stays until an agent answers
const mins = s => ({ minutes: Math.round(s / 60) || 1 });
const est = w => w ? ' · ' + fmt('wait', mins(w)) : '';
const qOf = id => QA.find(q => q.id == id) || QA[0];
const note = q => !q || q.state == 'available' ? '' : q.state == 'busy' ? fmt('busy', { position: q.waiting + 1 }) + est(q.wait_s) : S[q.state == 'full' ? 'full' : 'offline'];

let tok, who = '', mail = '', avail, QA = [], wline = '', done, offl, cfgP, opn, live, ended,
  ws, ready, tries = 0, timer, pingT, rxAt, topSeq = 0, rdSeq = 0, sTo = 0, hello, unrd = 0, sound, clock,
  typT = 0, typOn, idle, tyT, rdT, cbF, tkt, peeks = new Set(), peekQ = '', drAt = 0, drT, EDIT, ed, edT;
const seen = new Set(), lines = new Map(), pend = new Map(), q = [];
// "Seen": one mark, under the newest visitor line an agent has seen; never announced
const seenE = mk('span', { ariaLive: 'off' });

function fill(r) {
  for (const e of r.querySelectorAll('[data-s]')) e.textContent = S[e.dataset.s];
  for (const e of r.querySelectorAll('[data-a]')) e.setAttribute('aria-label', e['placeholder' in e ? 'placeholder' : 'title'] = S[e.dataset.a] || '');
}

const cfg = () => cfgP ||= get('/v1/config').then(c => {
  S = c.strings || {};
  if (c.lang) W.lang = LANG = c.lang, W.dir = c.dir || 'ltr';
  fill(root);
  sound = c.sound;
  clock = new Intl.DateTimeFormat(LANG, { timeStyle: 'short' });
  if (c.max_text > 0) ta.maxLength = O.text.maxLength = c.max_text;
  EDIT = c.edit_seconds * 1e3;
  mailF.hidden = !c.mail;
  att.hidden = !(FILES = c.files);
  picker.accept = FILES?.types;
  agree.hidden = !c.consent;
  agree.lastChild.textContent = c.consent;
  agree.firstChild.required = c.consent;
  const qs = c.queues || [];
  peeks = new Set(qs.filter(q => q.peek).map(q => q.id));
  for (const s of [sel, O.topic]) {
    s.replaceChildren(...qs.map(q => new Option(q.topic || q.name || q.id, q.id)));
    s.parentNode.hidden = qs.length < 2;
    if (OPT.queue) s.value = OPT.queue;
  }
  ident(OPT.identity);
});

function ident(id) {
  OPT.identity = id;
  const ok = id?.hash && id.name && id.email;
  for (const f of [form, offF]) {
    for (const k of ['name', 'email']) if (id?.[k]) f.elements[k].value = id[k];
    for (const l of f.querySelectorAll('.lcb-who')) l.hidden = ok;
    f.querySelector('.lcb-verified').textContent = ok ? fmt('verified', { name: id.name }) : '';
  }
}

const fresh = () => get('/v1/status').then(s => { avail = (QA = s.queues || stat().queues || []).some(can) });

function view() {
  const on = live || ended, off = !on && (!avail || offl);
  form.hidden = on || off;
  if (off && offF.hidden) {
    O.name.value ||= form.elements.name.value || who;
    O.email.value ||= form.elements.email.value || mail;
    O.topic.value = sel.value;
  }
  formP.textContent = note(qOf(sel.value));
  const oq = qOf(O.topic.value);
  offP.textContent = can(oq) ? S.leave_note : note(oq) || S.offline;
  offF.hidden = !off || done;
  if (done) done.hidden = !off;
  toC.hidden = !avail;
  log.hidden = !on;
  bar.hidden = endB.hidden = !live;
  peekP.hidden = !live || !peeks.has(peekQ);
  if (!live) cnf.hidden = edBar.hidden = !(ed = 0);
  txB.hidden = !live || !tok;
  newB.hidden = !ended;
  log.scrollTop = 1e9;
}

function show(o) {
  opn = o;
  panel.hidden = !o;
  opened(o);
  upd(s => { s.open = o });
  if (o) {
    emit('open');
    allSeen();
    return Promise.all([cfg(), fresh()]).then(() => {
      if (ended) dial();
      view();
      marks();
      focus();
    });
  }
}

const focus = () => (form.hidden ? offF.hidden ? ta : [O.name, O.email, O.text].find(e => !e.value && !e.closest('[hidden]')) || leaveB : [...form.elements].find(e => !e.closest('[hidden]'))).focus();

function place(d, seq) {
  d.dataset.seq = seq || '';
  log.insertBefore(d, d.matches('.lcb-pending') ? null : [...log.children].find(c => c.matches('.lcb-pending') || seq && c.dataset.seq > seq));
  log.scrollTop = 1e9;
}

function rich(text) {
  const t = el('div', 'lcb-text');
  t.append(...text.split(/((?:https?:\/\/|mailto:)[^\s<>"]+[^\s<>".,;:!?)\]'])/)
    .map((p, i) => i % 2 ? el('a', '', p, { href: p, target: '_blank', rel: 'noopener noreferrer' }) : p));
  return t;
}

function line(k, text, m = {}) {
  const d = el('div', 'lcb-msg lcb-' + k, '', { ts: m.ts * 1e3 || Date.now(), f: m.file }), when = new Date(d.ts);
  if (k == 'agent') d.append(el('div', 'lcb-name', m.name));
  d.append(m.file ? shown(m.file) : rich(text));
  if (k != 'system' && clock) d.append(el('time', 'lcb-time', clock.format(when), { dateTime: when.toISOString() }));
  if (m.edited || m.deleted) redo(d, m);
  place(d, m.seq);
  return d;
}

// A line corrected (its new text, shown like any line, then "edited" after the time) or
// taken back (text, image or button gone)
function redo(d, m) {
  const t = d?.querySelector('time');
  if (!t || d.querySelector('.lcb-del')) return;
  d.querySelector('.lcb-text').replaceWith(m.deleted ? el('i', 'lcb-text lcb-del', S.deleted) : rich(m.text));
  t.replaceChildren(t.firstChild, m.deleted ? '' : ' · ' + S.edited);
}

function saw(n) {
  if (!n || seen.has(n)) return !!n;
  seen.add(n);
  if (n > topSeq) {
    topSeq = n;
    upd(o => { o.seq = Math.max(o.seq || 0, n) });
  }
}

function news() {
  if (opn && !document.hidden) return;
  badge(++unrd);
  if (sound) try {
    const a = new AudioContext(), o = new OscillatorNode(a);
    o.connect(new GainNode(a, { gain: .05 })).connect(a.destination);
    o.onended = () => a.close();
    o.start();
    o.stop(.2); // a new context starts at 0
  } catch {}
}
const allSeen = () => { if (opn && !document.hidden) badge(unrd = 0) };

const hold = (id, text) => { pend.set(id, text); lines.set(id, line('visitor lcb-pending', text)); marks() };

function unpend(id) {
  pend.delete(id);
  upd(o => { delete o.pending?.[id] });
}

function acked(id, seq) {
  const d = lines.get(id);
  saw(seq);
  unpend(id);
  if (d) d.classList.remove('lcb-pending'), place(d, seq);
}

function typed(name) {
  clearTimeout(tyT);
  tyE.textContent = name ? fmt('typing', { name }) : '';
  if (name) tyT = setTimeout(typed, 1e4);
}

// Read states both ways: the server learns what the visitor saw (a second after it shows),
// and "Seen" goes under the newest visitor line an agent has seen
function marks() {
  let d, left;
  seenE.textContent = ' · ' + S.seen;
  for (d of log.querySelectorAll('.lcb-visitor')) if (d.dataset.seq && d.dataset.seq <= sTo) d.querySelector('time')?.append(seenE); // the last one keeps it
  // Edit and Delete under the visitor's last line while it may still change
  left = live && +d?.dataset.seq && !d.f && !d.querySelector('.lcb-del') && d.ts + EDIT - Date.now();
  clearTimeout(edT);
  left > 0 ? (d.append(eds), edT = setTimeout(marks, left)) : eds.remove();
  clearTimeout(rdT);
  if (opn && ready && !document.hidden && topSeq > rdSeq) rdT = setTimeout(() => tx({ type: 'read', seq: rdSeq = topSeq }), 1e3);
}

const tx = o => { if (ws?.readyState == 1) ws.send(JSON.stringify(o)) };
const flush = () => {
  for (const [client_id, text] of pend) tx({ type: 'message', client_id, text });
  q.splice(0).map(tx);
};
const want = o => { ready ? tx(o) : (q.push(o), dial()) };

function dial() {
  if (ws || !live && !tok) return;
  const s = ws = new WebSocket(BASE.replace(/^http/, 'ws') + '/v1/ws');
  s.onopen = () => {
    tx(tok ? { type: 'resume', token: tok, after: topSeq } : hello);
    rxAt = Date.now();
    pingT = setInterval(() => Date.now() - rxAt > 6e4 ? lost(s) : tx({ type: 'ping' }), 25e3);
  };
  s.onmessage = e => {
    rxAt = Date.now();
    try { var m = JSON.parse(e.data) } catch {}
    if (ws == s && m?.type) got(m);
  };
  s.onclose = s.onerror = () => lost(s);
}

function hang() {
  ws?.close();
  ws = ready = null;
  clearInterval(pingT);
  clearTimeout(timer);
}

function lost(s) {
  if (ws != s) return;
  hang();
  if (!live && !q.length) return;
  tell(S.reconnecting);
  timer = setTimeout(dial, Math.min(15e3, 500 * 2 ** tries++) * (.8 + Math.random() * .4));
}

function got(m) {
  switch (m.type) {
    case 'started':
      tok = m.token;
      put({ token: tok, conversation: m.conversation, open: opn, name: who, email: mail,
        pending: Object.fromEntries(pend), queue: peekQ });
      view();
    case 'resumed':
      sTo = m.read | 0;
      ready = true;
      tell(tries ? S.back : '');
      tries = 0;
      flush();
      break;
    case 'ack':
      acked(m.client_id, m.seq);
      break;
    case 'message':
      if (lines.has(m.client_id) && !m.file) acked(m.client_id, m.seq);
      else if (!saw(m.seq)) {
        lines.get(m.client_id)?.remove();
        const k = m.from == 'agent' || m.from == 'visitor' ? m.from : 'system';
        const d = line(k, m.text, m);
        if (m.client_id) lines.set(m.client_id, d);
        if (k == 'agent') typed(), wline && tell(wline = ''), news();
        emit('message', m); // {from, name, text, ...}
      }
      break;
    case 'read':
      sTo = m.seq;
      break;
    case 'delete':
      m.deleted = 1;
    case 'edit':
      redo(log.querySelector(`[data-seq="${+m.seq}"]`), m);
      break;
    case 'typing':
      typed(!ended && m.active && m.name);
      break;
    case 'agent':
      if (!saw(m.seq) && S[m.event]) line('system', fmt(m.event, m), m);
      if (m.event != 'left') tell(wline = ''), instB.hidden = true;
      break;
    case 'queue':
      tell(wline = fmt('queue', m) + est(m.wait_s));
      instB.hidden = !m.offer_message;
      break;
    case 'ticket':
      tell(wline = '');
      if (!tkt) log.append(tkt = tktLine(m.ticket, m.helpdesk));
      break;
    case 'ended':
      if (!saw(m.seq)) {
        const d = line('system', S.ended, m);
        if (!load()?.rated && !tkt) survey(d, S.survey || m.survey?.question);
        emit('ended');
      }
      fin();
      break;
    case 'idle': // WCAG 2.2.1
      tell(fmt('idle_warning', mins(m.ends_in_s)));
      extB.hidden = false;
      break;
    case 'extended':
      calm();
      break;
    case 'rated':
      thanks();
      break;
    case 'callback':
      if (m.seq > (load()?.seq || 0)) upd(o => { delete o.callback });
      if (!saw(m.seq)) askCb(line('system', fmt('callback', m), m));
      break;
    case 'callback_saved':
      tell();
      if (cbF || !load()?.callback) {
        const d = line('system', fmt('callback_saved', m));
        cbF?.replaceWith(d);
        cbF = null;
      }
      upd(o => { o.callback = true });
      break;
    case 'transcript':
      tell();
      if (live) txOpen(0);
      line('system', fmt('mailed', { email: m.email || mail }));
      break;
    case 'error':
      onErr(m);
  }
  marks();
}

// Editing puts the line's text in the box (said, not only shown); Cancel or Escape takes it out
const edit = (v = '') => { edBar.hidden = !(ed = v && +eds.parentNode.dataset.seq); $('.lcb-sr').textContent = v && S.editing; ta.value = v; ta.focus() };
eds.firstChild.onclick = () => edit(eds.parentNode.querySelector('.lcb-text').textContent);
eds.lastChild.onclick = () => { want({ type: 'delete', seq: +eds.parentNode.dataset.seq }); ta.focus() };
edBar.lastChild.onclick = () => edit();

function onErr(m) {
  const c = m.code, text = S[/mail_|_mails/.test(c) ? 'error_mail' : 'error_' + c] || (c == 'rate_limited' ? S.slow : S.error);
  if (c == 'already_rated') return thanks();
  if (/^(rate_limited|try_again)$/.test(c) && !ready) return lost(ws);
  if (c == 'bad_token' || !tok) {
    const t = [...pend.values()].join('\n'), q = /^queue_(closed|full)$/.test(c) && qOf(hello?.topic);
    if (q) q.state = c.slice(6), avail = QA.some(can);
    reset();
    if (q) return O.text.value ||= t, toOff(true);
    return c != 'bad_token' && tell(text);
  }
  if (!ready) return lost(ws);
  if (c == 'ended') return fin();
  if (c == 'bad_phone') cbF?.phone.focus();
  if (c == 'nothing_written') return tell(text), instB.hidden = false, ta.focus();
  const id = m.client_id || pend.keys().next().value;
  if (pend.has(id) && (c == 'too_long' || c == 'empty')) {
    if (c == 'too_long' && !ta.value) ta.value = pend.get(id);
    lines.get(id).remove();
    unpend(id);
  }
  if (c == 'try_again') return timer = setTimeout(flush, 5e3), tell(S.retrying);
  if (c == 'rate_limited' || c == 'internal') timer = setTimeout(flush, 3e3);
  tell(text);
}

function fin() {
  instB.hidden = extB.hidden = true;
  live = false;
  ended = true;
  pend.clear();
  upd(o => { o.ended = true; o.pending = {} });
  typed();
  tell(wline = '');
  cbF?.remove();
  cbF = null;
  log.append(txP);
  txOpen(1);
  view();
}

function survey(at, ask) {
  const f = el('form', 'lcb-survey');
  let n;
  f.innerHTML = RATE;
  f.firstChild.textContent = ask;
  fill(f);
  f.onclick = e => {
    const b = e.target.closest('.lcb-rate');
    if (!b) return;
    n = +b.dataset.rating;
    for (const x of b.parentNode.children) x.setAttribute('aria-pressed', x == b);
    f.lastChild.disabled = false;
  };
  f.onsubmit = e => {
    e.preventDefault();
    n && want({ type: 'survey', rating: n, comment: f.comment.value.trim() });
  };
  at.after(f);
}

function askCb(at) {
  cbF?.remove();
  cbF = null;
  if (ended || load()?.callback) return;
  const f = cbF = el('form', 'lcb-callback');
  f.innerHTML = CALL;
  fill(f);
  f.onsubmit = e => {
    e.preventDefault();
    tell();
    want({ type: 'callback', phone: f.phone.value.trim(), time: f.when.value.trim() });
  };
  at.after(f);
  log.scrollTop = 1e9;
}

function thanks() {
  upd(o => { o.rated = true });
  log.querySelector('.lcb-survey')?.replaceWith(line('system', S.thanks));
}

function txOpen(o) {
  txP.hidden = !o;
  txB.setAttribute('aria-expanded', !!o);
  if (o) mailI.value = mail; // only the chat's own address
}

function reset() {
  hang();
  put(tok = null);
  live = ended = false;
  topSeq = rdSeq = sTo = 0;
  q.length = 0;
  log.before(txP);
  txOpen();
  log.replaceChildren();
  cbF = tkt = null;
  seen.clear();
  lines.clear();
  pend.clear();
  typed();
  tell(wline = '');
  view();
}

form.onsubmit = e => {
  e.preventDefault();
  const v = n => form.elements[n].value.trim();
  if (!(who = v('name'))) return;
  if (!can(qOf(sel.value))) return toOff(true);
  mail = v('email');
  peekQ = sel.value || QA[0]?.id;
  hello = { type: 'start', visitor: { name: who, email: mail }, topic: sel.value || null,
    page: { url: location.href, title: document.title, referrer: document.referrer },
    lang: LANG, identity: OPT.identity?.hash ? OPT.identity : undefined };
  live = true;
  tries = 0;
  view();
  dial();
  ta.focus();
};

offF.onsubmit = async e => {
  e.preventDefault();
  const b = leaveB;
  if (b.disabled) return;
  b.disabled = true;
  tell();
  try {
    // JSON without saying so: a simple request needs no CORS preflight (the server reads JSON)
    const r = await fetch(BASE + '/v1/offline', { method: 'POST', body: JSON.stringify({ name: who = O.name.value.trim(), email: mail = O.email.value.trim(),
        topic: O.topic.value || null, text: O.text.value.trim() }) });
    if (r.status == 429) return tell(S.slow);
    const j = await r.json();
    if (r.status != 201 || !j.ticket) throw j;
    const d = done = tktLine(j.ticket, j.helpdesk);
    O.text.value = '';
    if (avail) {
      d.append(btn('lcb-link', S.chat, () => { d.remove(); done = null; known(); toOff(false) }));
    }
    offF.before(d);
    view();
    d.tabIndex = -1;
    d.focus();
  } catch (x) { tell(S['error_' + x?.error?.code] || S.error) } finally { b.disabled = false }
};
function tktLine(id, helpdesk) {
  const [a, c = ''] = fmt(helpdesk === false ? 'ticket_team' : 'ticket', { email: mail }).split('{ticket}');
  const d = el('div', 'lcb-msg lcb-system lcb-ticket'), t = el('div', 'lcb-text');
  t.append(a, el('b', '', id), c);
  d.append(t);
  return d;
}
instB.onclick = () => { instB.hidden = true; want({ type: 'leave_message' }) };
const calm = () => { if (!extB.hidden) extB.hidden = true, tell() };
extB.onclick = () => { want({ type: 'extend' }); calm(); ta.focus() };
const toOff = o => { offl = o; tell(); view(); focus() };
$('.lcb-to-offline').onclick = () => toOff(true);
toC.onclick = () => toOff(false);

function untype() {
  clearTimeout(idle);
  if (typOn) tx({ type: 'typing', active: typOn = false });
}

comp.onsubmit = e => {
  e.preventDefault();
  const text = ta.value.trim();
  if (!text || !live) return;
  ta.value = '';
  clearTimeout(drT);
  untype();
  calm();
  if (ed) return want({ type: 'edit', seq: ed, text }), edit();
  const id = uid();
  hold(id, text);
  upd(o => { (o.pending ||= {})[id] = text });
  emit('message', { from: 'visitor', name: who, text });
  if (ready) tell(), tx({ type: 'message', client_id: id, text });
};
ta.onkeydown = e => { if (e.key == 'Enter' && !e.shiftKey && !e.isComposing) comp.onsubmit(e) };
const draft = () => { drAt = Date.now(); tx({ type: 'draft', text: ta.value.trim() }) };
ta.oninput = () => {
  if (!ready) return;
  if (peeks.has(peekQ)) clearTimeout(drT), drT = setTimeout(draft, drAt + 1500 - Date.now());
  if (Date.now() - typT > 3e3) { typT = Date.now(); tx({ type: 'typing', active: typOn = true }) }
  clearTimeout(idle);
  idle = setTimeout(untype, 4e3);
};

const close = () => { show(false); launcher.focus() };
minB.onclick = close;
panel.onkeydown = e => { if (e.key == 'Escape') ed ? edit() : close() };
endB.onclick = () => { cnf.hidden = false; cnf.children[1].focus() };
cnf.children[1].onclick = () => { cnf.hidden = true; tok && want({ type: 'end' }); ready || fin() };
cnf.children[2].onclick = () => { cnf.hidden = true; ta.focus() };
txB.onclick = () => txOpen(txP.hidden);
// The token goes in a header, never in a URL.
const blob = async p => {
  const r = await fetch(BASE + p, { headers: { 'X-Livechat-Token': tok } });
  if (!r.ok) throw 0;
  return URL.createObjectURL(await r.blob());
};
const save = (p, download) => blob(p).then(href => {
  const a = mk('a', { href, download }); // saved, not opened
  root.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 6e4);
}, () => tell(S.error));
dlB.onclick = () => save('/v1/transcript', 'chat-transcript.txt');
const IMG = /^image\/(png|jpeg|gif|webp)$/;
const pic = (src, alt = '') => {
  const i = mk('img', { alt, src });
  i.onload = i.onerror = () => { URL.revokeObjectURL(src); log.scrollTop = 1e9 };
  return i;
};
const units = (n, m = n >= 1 << 20) => Math.max(.1, n / 2 ** (m ? 20 : 10)).toLocaleString(LANG, { style: 'unit', unit: (m ? 'mega' : 'kilo') + 'byte', maximumFractionDigits: 1 });
const oops = (c, t) => tell(fmt(`error_${c}`, { max: units(FILES.max_bytes) }) || t || S.error_upload);
function shown(f) {
  const t = el('div', 'lcb-text'), p = '/v1/files/' + f.id;
  IMG.test(f.type) ? blob(p).then(u => t.append(pic(u, f.name)), () => t.append(f.name))
    : t.append(btn('lcb-link', f.name + ' (' + units(f.size) + ')', () => save(p, f.name)));
  return t;
}
function up(f) {
  const b = f.size > FILES.max_bytes;
  if (b || !FILES.types.includes(f.type)) return oops(b ? 'too_large' : 'bad_type');
  const id = uid(), d = line('visitor lcb-pending', f.name), pb = el('progress'), sr = $('.lcb-sr');
  let x, n = 0, said = -1;
  lines.set(id, d);
  if (IMG.test(f.type)) d.firstChild.prepend(pic(URL.createObjectURL(f)));
  pb.ariaLabel = f.name;
  d.append(pb, btn('lcb-link', S.cancel, () => { d.remove(); x.abort(); ta.focus() }));
  const go = () => {
    if (!d.isConnected) return;
    x = new XMLHttpRequest();
    x.open('POST', BASE + '/v1/uploads');
    x.responseType = 'json';
    // a retry keeps the id: stored once
    x.setRequestHeader('X-Livechat-Token', tok);
    x.setRequestHeader('X-Livechat-Client-Id', id);
    x.setRequestHeader('X-Livechat-Filename', encodeURIComponent(f.name));
    x.upload.onprogress = e => {
      const p = pb.value = e.loaded / e.total;
      if (said < (said = p * 4 | 0)) sr.textContent = f.name + ' ' + p.toLocaleString(LANG, { style: 'percent' });
    };
    x.onloadend = () => {
      const j = x.response || {}, s = x.status;
      if (j.file) tell(), got({ ...j, type: 'message', from: 'visitor', text: f.name, client_id: id });
      else if (!d.isConnected);
      else if ((!s || s == 503) && n++ < 4) tell(S.retrying), setTimeout(go, 2e3 * n);
      else d.remove(), oops(j.error?.code, j.error?.message);
    };
    x.send(f);
  };
  go();
}
const take = (e, l) => {
  if (!l?.length) return;
  e.preventDefault();
  if (FILES && tok && live) for (const f of l) up(f);
};
att.onclick = () => picker.click();
picker.onchange = e => { take(e, picker.files); picker.value = '' };
panel.onpaste = e => take(e, e.clipboardData.files);
panel.ondrop = e => take(e, e.dataTransfer.files);
panel.ondragover = e => e.preventDefault();
mailF.onsubmit = e => {
  e.preventDefault();
  tell();
  want({ type: 'transcript' });
};
const known = () => {
  form.elements.name.value ||= who;
  form.elements.email.value ||= mail;
};
newB.onclick = () => { reset(); known(); focus() };
sel.onchange = O.topic.onchange = view;
document.addEventListener('visibilitychange', () => { marks(); allSeen() });

if (st?.token) {
  ({ token: tok, name: who = '', email: mail = '', queue: peekQ = '', ended } = st);
  live = !ended;
  cfg().then(() => {
    if (live) for (const [id, text] of Object.entries(st.pending || {})) hold(id, text);
    if (st.open) show(true);
    if (live) dial();
  });
}
return {
  open: queue => { if (queue) sel.value = O.topic.value = queue; return opn || show(true) },
  close: () => opn && close(),
  toggle: () => opn ? close() : show(true),
  isOpen: () => opn,
  identify: id => cfg().then(() => ident(id)),
};
});
