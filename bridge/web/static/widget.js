// The loader: the launcher and what a page view costs (at most 4 KB gzipped as served; the
// panel comes on the first click). Template literals are served as written: see panel.js.
(() => {
'use strict';
const me = document.currentScript;
if (!me || window.LiveChat) return;
const D = me.dataset, OPT = window.LivechatBridge || {};
const BASE = new URL('.', me.src).href.slice(0, -1);
const KEY = 'lcb:' + BASE;
const QL = '?lang=' + [D.lang, OPT.lang, ...navigator.languages].filter(l => l && /^[\w-]+$/.test(l)).join();
if (D.hash) OPT.identity = { ...D }; // id, name, email, hash (the rest is ignored)
OPT.queue ||= D.queue;
let P, loading, status = {}, S = {}, invited;
// Shared with the panel
const load = () => { try { return JSON.parse(localStorage.getItem(KEY)) } catch {} }, st = load();
const mk = (tag, props) => Object.assign(document.createElement(tag), props);
const ICON = d => `<svg viewBox="0 0 24 24" aria-hidden=true><path d="${d}"/></svg>`;
const get = p => fetch(BASE + p + QL).then(r => r.json()).catch(() => ({}));
const seen = () => { try { return sessionStorage.getItem(KEY) } catch {} };
const on = {}, emit = (e, d) => (on[e] || []).map(f => { try { f(d) } catch {} });

const host = mk('livechat-bridge', { id: 'livechat-bridge' });
const root = host.attachShadow({ mode: 'open' });
root.innerHTML = `<div class=lcb hidden><span class=lcb-sr role=status></span>
  <div class=lcb-invite hidden><button class=lcb-inv></button>
  <button class=lcb-x data-a=dismiss>✕</button></div>
  <button class=lcb-launcher aria-expanded=false>${ICON('M21 12a8 8 0 0 1-11.6 7.1L4 20l1-4.6A8 8 0 1 1 21 12z')}<span>
  </span><b class=lcb-badge hidden></b></button></div>`;
const sheet = css => {
  try {
    const s = new CSSStyleSheet();
    s.replaceSync(css); // not subject to the page's CSP, unlike <style>
    root.adoptedStyleSheets = [...root.adoptedStyleSheets, s];
  } catch { root.append(mk('style', { textContent: css })) }
};
sheet(`:host{all:initial}
  .lcb{all:initial;--c:#2563eb;--t:#fff;--bg:#fff;--bg2:#f6f8fa;--fg:#1f2328;--mute:#57606a;--line:#d0d7de;--warn:#fff8c5;--warnfg:#4d2d00;position:fixed;z-index:2147483000;bottom:20px;right:20px;display:flex;flex-direction:column;align-items:flex-end;gap:12px;color:var(--fg);font:14px/1.45 system-ui,sans-serif}
  .lcb-left{right:auto;left:20px;align-items:flex-start}*{box-sizing:border-box}
  [hidden]{display:none!important}
  button{display:flex;align-items:center;justify-content:center;gap:8px;min-width:24px;min-height:24px;margin:0;padding:10px 14px;border:0;border-radius:8px;background:var(--c);color:var(--t);font:inherit;font-weight:600;cursor:pointer}
  :focus-visible{outline:2px solid #fff;box-shadow:0 0 0 4px #1f2328}
  svg{width:20px;height:20px;fill:none;stroke:currentColor;stroke-width:2;stroke-linecap:round;stroke-linejoin:round}
  .lcb-launcher{position:relative;height:52px;min-width:52px;padding:0 18px;border-radius:26px;box-shadow:0 4px 14px #0004}
  .lcb-badge{position:absolute;top:-6px;inset-inline-end:-6px;min-width:22px;padding:1px 6px;border-radius:11px;background:#b3261e;color:#fff;font-size:12px}
  .lcb-invite{display:flex;align-items:flex-start;max-width:260px;background:var(--bg);border-radius:14px;box-shadow:0 4px 18px #0004}
  .lcb-invite button{background:none;color:var(--fg);font-weight:400;text-align:start}
  .lcb-x{padding:6px 10px}
  .lcb-sr{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%)}
  @media (prefers-color-scheme:dark){.lcb{--bg:#22272e;--bg2:#1c2128;--fg:#e6edf3;--mute:#adbac7;--line:#545d68;--warn:#3b2f00;--warnfg:#f8e3a1}
  }`);
const $ = s => root.querySelector(s);
const [W, launcher, label, badge, bubble, inv] = ['.lcb', '.lcb-launcher', '.lcb-launcher span', '.lcb-badge', '.lcb-invite', '.lcb-inv'].map($);
const can = q => /^(available|busy)$/.test(q?.state), avail = () => (status.queues || []).some(can);

const panel = () => loading ||= new Promise((ok, no) => {
  LC._boot = f => { delete LC._boot; ok(P = f(ctx)) };
  document.head.append(mk('script', { src: BASE + '/panel.js', onerror: no }));
}).catch(() => { loading = null; label.textContent = S.error || '!' });
const ctx = {
  BASE, KEY, get, $, can, OPT, root, W, launcher, sheet, emit, st, load, mk, ICON, status: () => status,
  badge: n => { // the name keeps the visible label (WCAG 2.5.3)
    badge.hidden = !n;
    badge.textContent = n;
    n ? launcher.setAttribute('aria-label', label.textContent + ' · ' + (S.unread || '').replace('{count}', n)) : launcher.removeAttribute('aria-label');
  },
  opened: o => { launcher.setAttribute('aria-expanded', o); W.classList.toggle('lcb-open', o); if (o) hideBubble() },
};
const LC = window.LiveChat = {
  open: q => panel().then(p => p?.open(q)),
  close: () => P?.close(),
  identify: id => { OPT.identity = id; P?.identify(id) },
  on: (e, f) => { (on[e] ||= []).push(f) },
  invite, // (text): a second argument would name the queue to open
};
launcher.onclick = () => P ? P.toggle() : LC.open();

const glob = p => new RegExp('^' + p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*') + '$');
const hits = (ps, path) => (ps || []).some(p => glob(p).test(path));
function invite(text, queue) {
  if (invited || !text || P?.isOpen() || st?.token || seen()) return;
  invited = true;
  inv.textContent = $('.lcb-sr').textContent = text;
  inv.onclick = () => LC.open(queue);
  bubble.hidden = false;
}
const hideBubble = () => { bubble.hidden = true; $('.lcb-sr').textContent = '' };
$('.lcb-x').onclick = () => { hideBubble(); try { sessionStorage.setItem(KEY, 1) } catch {} launcher.focus() };

const go = () => document.body.append(host);
document.body ? go() : addEventListener('DOMContentLoaded', go);
if (st?.token) panel();
get('/v1/status').then(s => {
  // The look, in the visitor's language, then the invitations of this page
  status = s;
  if (s.color) W.style.cssText = `--c:${s.color};--t:${s.text_color}`;
  W.classList.toggle('lcb-left', s.position == 'left');
  S = s.strings || {};
  label.textContent = st?.token || avail() ? S.chat : S.leave;
  if (s.lang) W.lang = s.lang, W.dir = s.dir;
  $('.lcb-x').setAttribute('aria-label', S.dismiss || '✕');
  W.hidden = false;
  const path = location.pathname + location.search;
  if ((s.queues || []).some(q => q.state == 'available')) for (const r of s.invitations || [])
    if (hits(r.pages, path) && !hits(r.exclude, path)) { setTimeout(() => invite(r.text, r.queue), r.delay * 1e3); break }
});
})();
