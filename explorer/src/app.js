// mimi-ledger explorer (issue #16): pages for a number lookup, the log, one entry and the trust in
// force. No rule of the protocol is implemented here: canonicalization, trust parsing, every
// signature, proof, fold and completeness check is `ledger-core` compiled to WebAssembly
// (./pkg/ledger_wasm.js). This file fetches, calls the verifier and renders what it says.
import init, * as L from './pkg/ledger_wasm.js';

// ---------------------------------------------------------------------------------------------
// The Discovery Provider and small helpers.
// ---------------------------------------------------------------------------------------------

const params = new URLSearchParams(location.search);
/** The DP whose API this page reads: `?dp=URL`, else the origin that served the page. */
const DP = (params.get('dp') || location.origin).replace(/\/+$/, '');
const TRUST_KEY = `mimi-ledger-explorer:trust:${DP}`;
const PAGE_SIZE = 20;

const $ = (sel, root = document) => root.querySelector(sel);

/** An element: `h('p', {class: 'x'}, 'text', child, …)`; text is always text, never HTML. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const now = () => Math.floor(Date.now() / 1000);

/** Calls a verifier function and parses its JSON answer. The verifier never throws; a binding
 *  that wants BigInt for a 64-bit number gets one. */
function call(fn, ...args) {
  let out;
  try {
    out = fn(...args);
  } catch (e) {
    if (!/BigInt/i.test(String(e))) return { ok: false, error: `verifier: ${e}` };
    out = fn(...args.map((a) => (typeof a === 'number' ? BigInt(a) : a)));
  }
  try {
    return JSON.parse(out);
  } catch (e) {
    return { ok: false, error: `verifier answered something that is not JSON: ${e}` };
  }
}

/** `GET path` on the DP: `{ok, status, text}`; a problem+json error becomes a readable message. */
async function get(path) {
  let resp;
  try {
    resp = await fetch(DP + path, { credentials: 'omit', cache: 'no-store' });
  } catch (e) {
    return { ok: false, status: 0, error: `cannot reach the Discovery Provider at ${DP}: ${e.message}` };
  }
  const text = await resp.text();
  if (resp.ok) return { ok: true, status: resp.status, text };
  let error = `HTTP ${resp.status}`;
  if ((resp.headers.get('content-type') || '').includes('json')) {
    try {
      const p = JSON.parse(text);
      error = `${p.title || p.type || 'error'} (HTTP ${p.status || resp.status}): ${p.detail || ''}`;
    } catch { /* not JSON after all */ }
  }
  return { ok: false, status: resp.status, error, problem: true };
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return 'unknown age';
  const s = Number(seconds);
  if (s < 0) return `${-s} s in the future`;
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

function when(unix) {
  if (unix === null || unix === undefined) return '—';
  const d = new Date(Number(unix) * 1000);
  return isNaN(d) ? String(unix) : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

function short(s, n = 16) {
  s = String(s ?? '');
  return s.length > n * 2 + 1 ? `${s.slice(0, n)}…${s.slice(-n)}` : s;
}

function verdict(ok, title, ...lines) {
  return h('div', { class: `verdict ${ok === true ? 'ok' : ok === false ? 'bad' : 'info'}`, id: 'verdict',
    'data-ok': ok === true ? 'true' : ok === false ? 'false' : 'none' },
  h('span', { class: 'mark', 'aria-hidden': 'true' }, ok === true ? '✓' : ok === false ? '✗' : 'ℹ'),
  h('div', {}, h('p', {}, h('strong', {}, title)), lines.map((l) => h('p', {}, l))));
}

function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function table(caption, heads, rows, attrs = {}) {
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'stack', ...attrs },
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, heads.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c, i) =>
        h('td', { 'data-label': heads[i], class: c?.cls }, c?.node ?? c)))))));
}

const MARKS = { ok: '✓', failed: '✗', 'not-reached': '–' };
const RESULT_WORDS = { ok: 'passed', failed: 'failed', 'not-reached': 'not reached' };

/** The verifier's steps as a list: ✓ for each that passed, ✗ and why for the one that failed. */
function steps(list) {
  return h('ol', { class: 'steps', id: 'steps' }, (list || []).map((s) =>
    h('li', { 'data-step': s.name, 'data-result': s.result },
      h('span', { class: 'mark', 'aria-hidden': 'true' }, MARKS[s.result] || '?'),
      h('span', {}, `Step ${s.number}: ${s.title} `,
        h('span', { class: 'visually-hidden why' }, `— ${RESULT_WORDS[s.result] || s.result}`)),
      s.detail ? h('span', { class: 'detail' }, s.detail) : null)));
}

function cosigners(list, quorum) {
  if (!list || list.length === 0) {
    return h('p', { id: 'cosigners', 'data-count': '0' },
      quorum ? `No witness cosignature verified (quorum ${quorum}).` :
        'No witness cosignatures: the trust in force names no witness, so none is required.');
  }
  return table(`Witness cosignatures that verified against the trust file${quorum ? ` (quorum ${quorum})` : ''}`,
    ['Witness', 'Key', 'Cosigned at', 'Age'],
    list.map((c) => [c.name, { node: short(c.key, 12), cls: 'mono' }, when(c.timestamp), ago(c.age_s)]),
    { id: 'cosigners', 'data-count': String(list.length) });
}

// ---------------------------------------------------------------------------------------------
// Trust: a pasted or loaded trust file, else trust on first use from the DP's /v1/info.
// ---------------------------------------------------------------------------------------------

/** `{toml, trust, source: 'file'|'tofu', since}` or null when none could be had. */
let TRUST = null;

function loadStored() {
  try {
    const s = JSON.parse(localStorage.getItem(TRUST_KEY) || 'null');
    if (!s || typeof s.toml !== 'string') return null;
    const parsed = call(L.parse_trust, s.toml);
    if (!parsed.ok) return null;
    return { toml: s.toml, trust: parsed.trust, source: s.source === 'file' ? 'file' : 'tofu', since: s.since, name: s.name };
  } catch {
    return null;
  }
}

function store(t) {
  try {
    localStorage.setItem(TRUST_KEY, JSON.stringify({ toml: t.toml, source: t.source, since: t.since, name: t.name }));
  } catch { /* private mode: it lasts for this page only */ }
}

/**
 * Rollback protection across visits, as `ledger lookup` keeps it: after a verified checkpoint
 * the stored trust file remembers its size (ledger-wasm raises `last_seen_size`, never lowers it),
 * so this DP cannot later show this browser an older view of the log unnoticed.
 */
function rememberSize(t, size) {
  const r = call(L.remember_size, t.toml, Number(size));
  if (r.ok && r.toml !== t.toml) {
    t.toml = r.toml;
    t.trust = r.trust;
    store(t);
  }
}

/** The trust in force; on first use, the DP's own keys (remembered, so a later change shows). */
async function trust() {
  if (TRUST) return TRUST;
  TRUST = loadStored();
  if (TRUST) return TRUST;
  const info = await get('/v1/info');
  if (!info.ok) throw new Error(`no trust file, and /v1/info failed: ${info.error}`);
  const t = call(L.trust_from_info, info.text);
  if (!t.ok) throw new Error(`no trust file, and /v1/info is unusable: ${t.error}`);
  TRUST = { toml: t.toml, trust: t.trust, source: 'tofu', since: now() };
  store(TRUST);
  return TRUST;
}

/**
 * The trust in force, with the banner that says where it came from; or null, after showing in
 * `out` (below `before`, if given) why there is none.
 */
async function trustOrSay(out, title, ...before) {
  try {
    const t = await trust();
    showTrustBanner();
    return t;
  } catch (e) {
    out.replaceChildren(...before, verdict(false, title, e.message));
    return null;
  }
}

function showTrustBanner() {
  const b = $('#trust-banner');
  if (!TRUST) { b.hidden = true; return; }
  b.replaceChildren();
  if (TRUST.source === 'tofu') {
    b.className = 'banner';
    b.append(h('strong', {}, 'Trust on first use. '),
      `No trust file was given, so this page verifies against the keys this Discovery Provider itself announced (first seen ${when(TRUST.since)}). `,
      'That catches a DP that changes its story later, not one that lied from the start. ',
      h('a', { href: '#/trust' }, 'Give a trust file'), '.');
    b.dataset.trust = 'tofu';
  } else {
    b.className = 'banner pinned';
    b.append(`Verifying against your trust file${TRUST.name && TRUST.name !== 'pasted' ? ` (${TRUST.name})` : ''} for the log `,
      h('code', {}, TRUST.trust.origin), '.');
    b.dataset.trust = 'file';
  }
  b.hidden = false;
}

function trustFacts(t) {
  const w = t.witnesses || [];
  return facts([
    ['Origin', h('code', { id: 'trust-origin' }, t.origin)],
    ['Log key', h('code', { class: 'mono', id: 'trust-vkey' }, t.log_vkey)],
    ['Tree hash', h('code', {}, t.hash)],
    ['Witnesses', w.length ? h('ul', { id: 'trust-witnesses' }, w.map((k) => h('li', {}, h('code', { class: 'mono' }, k))))
      : h('span', { id: 'trust-witnesses' }, 'none')],
    ['Quorum', String(t.quorum ?? 0)],
    ['Max checkpoint age', t.max_age_s ? `${t.max_age_s} s` : 'not limited'],
    t.provers && t.provers.length ? ['Identity provers', h('ul', {}, t.provers.map((k) => h('li', {}, h('code', {}, k))))] : null,
    ['Attestation required', t.require_attestation ? 'yes' : 'no'],
  ]);
}

async function renderTrust() {
  const out = $('#trust-current');
  out.replaceChildren(h('p', {}, 'Loading…'));
  const t = await trustOrSay(out, 'No trust');
  if (!t) return;
  const head = t.source === 'tofu'
    ? verdict(null, 'Trust on first use',
      `No trust file was given for ${DP}. These keys are what the Discovery Provider announced about itself at ${when(t.since)}; this browser remembers them, so a later change of keys fails verification. A DP that lied from the very first visit is not caught: paste or load a trust file from a source you trust.`)
    : verdict(true, 'Your trust file', `${t.name && t.name !== 'pasted' ? `Loaded from ${t.name}` : 'Pasted into this page'}; kept in this browser for ${DP}.`);
  head.id = 'trust-verdict';
  head.dataset.source = t.source;
  out.replaceChildren(head, h('h2', {}, 'Verifying against'), trustFacts(t.trust),
    h('details', {}, h('summary', {}, 'The trust file text'), h('pre', { id: 'trust-toml' }, t.toml)));
  if (!$('#trust-text').value) $('#trust-text').value = t.source === 'file' ? t.toml : '';
}

function useTrustText(text, name) {
  const msg = $('#trust-message');
  const parsed = call(L.parse_trust, text);
  if (!parsed.ok) {
    msg.className = 'bad-text';
    msg.textContent = `This is not a usable trust file: ${parsed.error}`;
    return false;
  }
  TRUST = { toml: text, trust: parsed.trust, source: 'file', since: now(), name };
  store(TRUST);
  msg.className = 'ok-text';
  msg.textContent = `Trust file in force: log ${parsed.trust.origin}.`;
  renderTrust();
  return true;
}

// ---------------------------------------------------------------------------------------------
// Number lookup.
// ---------------------------------------------------------------------------------------------

const STATUS_WORDS = { mapped: 'Mapped', none: 'No mapping', 'opted-out': 'Opted out' };

async function renderLookup(q, region) {
  const out = $('#lookup-result');
  if (!q) { out.replaceChildren(); return; }
  $('#q').value = q;
  $('#region').value = region || '';
  out.replaceChildren(h('p', { role: 'status' }, 'Looking up and verifying…'));
  const canon = call(L.canonicalize, q, (region || '').toUpperCase());
  if (!canon.ok) {
    out.replaceChildren(verdict(false, 'Not a phone number or address this log knows', canon.error));
    return;
  }
  const sii = canon.sii;
  const head = facts([['Canonical identifier', h('code', { id: 'canonical-sii' }, sii)]]);
  const t = await trustOrSay(out, 'Not verified: no trust', head);
  if (!t) return;
  const r = await get(`/v1/lookup?sii=${encodeURIComponent(sii)}`);
  if (!r.ok) {
    out.replaceChildren(head, verdict(false, 'The Discovery Provider refused the lookup', r.error));
    return;
  }
  const v = call(L.verify_lookup, r.text, t.toml, sii, now());
  const parts = [head];
  if (v.ok) {
    rememberSize(t, v.checkpoint.size);
    const status = STATUS_WORDS[v.status] || v.status;
    parts.push(verdict(true, `Verified: ${status.toLowerCase()}`,
      `Every step of SPEC §6 passed against ${t.source === 'tofu' ? 'the keys trusted on first use' : 'your trust file'}, including completeness (§9): this is everything the log holds for ${sii} as of its checkpoint of size ${v.checkpoint?.size}.`));
    parts.push(facts([['Status', h('span', { class: 'status-badge', id: 'status', 'data-status': v.status }, status)]]));
    if (v.status === 'mapped') {
      parts.push(h('h2', {}, 'Current mappings'), table('Verified mappings (all of them)',
        ['MSP', 'SSI', 'Tags', 'Attested by', 'Since', 'Entry'],
        v.mappings.map((m) => [m.msp, { node: m.ssi, cls: 'mono' }, (m.tags || []).join(', ') || '—',
          m.attested_by || 'not attested', when(m.since),
          h('a', { href: `#/entry/${m.index}` }, `#${m.index}`)]),
        { id: 'mappings' }));
    } else if (v.status === 'opted-out') {
      parts.push(h('p', {}, 'The holder of this identifier opted out: the log proves no MSP may map it.'));
    } else {
      parts.push(h('p', { id: 'absence' }, `The log's verifiable map proves that no entry at all exists for ${sii} (absence proven, step 5).`));
    }
  } else {
    const f = v.failure || { name: 'malformed-answer', number: 0, detail: v.error || 'unknown' };
    const step = (v.steps || []).find((s) => s.name === f.name);
    parts.push(verdict(false, `Not verified: step ${f.number} (${step?.title || f.name}) failed`,
      f.detail, 'Nothing this Discovery Provider said about this identifier is shown: an answer that does not verify is no answer. Ask another Discovery Provider.'));
    parts.push(facts([['Status', h('span', { class: 'status-badge bad-text', id: 'status', 'data-status': 'unverified' }, 'Unknown (not verified)')]]));
  }
  parts.push(h('h2', {}, 'Verification steps'), steps(v.steps));
  if (v.checkpoint) {
    parts.push(h('h2', {}, 'Checkpoint and witnesses'), facts([
      ['Log', h('code', {}, v.checkpoint.origin)],
      ['Tree size', String(v.checkpoint.size)],
      ['Root hash', h('code', { class: 'mono' }, v.checkpoint.root_hash)],
      v.map_index !== null && v.map_index !== undefined ? ['Map leaf (completeness)', h('a', { href: `#/entry/${v.map_index}` }, `#${v.map_index}`)] : null,
    ]), cosigners(v.cosigners, t.trust.quorum));
  }
  if (v.ok && v.history && v.history.length) {
    parts.push(h('h2', {}, 'History'), table(`Every entry for ${sii}, oldest first (verified)`,
      ['Entry', 'Kind', 'What', 'Time'],
      v.history.map((e) => [h('a', { href: `#/entry/${e.index}` }, `#${e.index}`), e.kind, e.summary, when(e.time)]),
      { id: 'history' }));
  }
  out.replaceChildren(...parts);
}

// ---------------------------------------------------------------------------------------------
// The log: checkpoint, witnesses, recent entries, tree size over time.
// ---------------------------------------------------------------------------------------------

async function renderLog(before) {
  const cpOut = $('#log-checkpoint');
  cpOut.replaceChildren(h('p', {}, 'Loading the checkpoint…'));
  const t = await trustOrSay(cpOut, 'Not verified: no trust');
  if (!t) return;
  const cp = await get('/checkpoint');
  if (!cp.ok) { cpOut.replaceChildren(verdict(false, 'No checkpoint', cp.error)); return; }
  const v = call(L.verify_checkpoint, cp.text, t.toml, now());
  const size = Number(v.size ?? 0);
  if (v.ok) rememberSize(t, size);
  cpOut.replaceChildren(
    v.ok ? verdict(true, 'Checkpoint verified', `Signed by the log key and cosigned by ${v.cosigners.length} witness${v.cosigners.length === 1 ? '' : 'es'} (quorum ${v.quorum}) of the trust in force.`)
      : verdict(false, `Checkpoint not verified${v.failed_step ? ` (${v.failed_step})` : ''}`, v.error || 'unknown'),
    h('h2', {}, 'Current checkpoint'),
    facts([
      ['Log', h('code', { id: 'log-origin' }, v.origin ?? '—')],
      ['Tree size', h('span', { id: 'log-size' }, String(size))],
      ['Root hash', h('code', { class: 'mono' }, v.root_hash ?? '—')],
      ['Witnesses trusted', (t.trust.witnesses || []).length ? `${t.trust.witnesses.length}, quorum ${t.trust.quorum}` : 'none'],
    ]),
    h('h2', {}, 'Latest cosignatures'),
    cosigners(v.cosigners, v.quorum),
    h('details', {}, h('summary', {}, 'The checkpoint note'), h('pre', {}, cp.text)));
  if (!v.ok) {
    $('#log-entries').replaceChildren();
    $('#log-chart').replaceChildren();
    return;
  }
  renderEntries(size, before);
  renderChart(size);
}

async function renderEntries(size, before) {
  const out = $('#log-entries');
  const end = Math.min(size, Number.isFinite(before) && before > 0 ? before : size);
  const start = Math.max(0, end - PAGE_SIZE);
  out.replaceChildren(h('h2', { id: 'h-entries' }, 'Recent entries'), h('p', {}, 'Loading…'));
  if (end === 0) { out.replaceChildren(h('h2', {}, 'Recent entries'), h('p', {}, 'The log is empty.')); return; }
  const r = await get(`/v1/entries?start=${start}&count=${end - start}`);
  if (!r.ok) { out.replaceChildren(h('h2', {}, 'Recent entries'), verdict(false, 'Cannot read entries', r.error)); return; }
  let page;
  try { page = JSON.parse(r.text).entries || []; } catch (e) { page = []; }
  const rows = page.slice().reverse().map((e) => {
    const d = call(L.describe_leaf, e.leaf);
    return [h('a', { href: `#/entry/${e.index}` }, `#${e.index}`),
      d.ok ? d.kind : 'unreadable', d.ok ? d.summary : d.error, d.ok ? when(d.time) : '—'];
  });
  const nav = h('nav', { class: 'pager', 'aria-label': 'Entry pages' },
    end < size ? h('a', { href: `#/log?before=${Math.min(size, end + PAGE_SIZE)}` }, '← Newer') : null,
    h('span', {}, `Entries ${start}–${end - 1} of ${size}`),
    start > 0 ? h('a', { href: `#/log?before=${start}`, id: 'older' }, 'Older →') : null);
  out.replaceChildren(h('h2', {}, 'Recent entries'),
    table('Newest first. Parsed only, not verified: open an entry to check its inclusion proof.',
      ['Entry', 'Kind', 'What', 'Time'], rows, { id: 'entries' }), nav);
}

async function renderChart(size) {
  const out = $('#log-chart');
  if (size < 2) { out.replaceChildren(); return; }
  const n = Math.min(size, 12);
  const idx = [...new Set(Array.from({ length: n }, (_, i) => Math.round((i * (size - 1)) / (n - 1))))];
  const points = [];
  for (const i of idx) {
    // Map leaves carry no time: each sample reads two entries and keeps the later one with a time.
    const start = Math.max(0, i - 1);
    const r = await get(`/v1/entries?start=${start}&count=${i - start + 1}`);
    if (!r.ok) continue;
    try {
      const timed = JSON.parse(r.text).entries
        .map((e) => ({ e, d: call(L.describe_leaf, e.leaf) }))
        .filter(({ d }) => d.ok && d.time !== null && d.time !== undefined);
      const last = timed[timed.length - 1];
      if (last && !points.some((p) => p.size === last.e.index + 1)) {
        points.push({ t: Number(last.d.time), size: last.e.index + 1 });
      }
    } catch { /* skip this sample */ }
  }
  if (points.length < 2) { out.replaceChildren(); return; }
  points.sort((a, b) => a.t - b.t || a.size - b.size);
  const W = 600, H = 200, P = { l: 56, r: 12, t: 12, b: 36 };
  const t0 = points[0].t, t1 = Math.max(points[points.length - 1].t, t0 + 1);
  const s1 = Math.max(...points.map((p) => p.size));
  const x = (tt) => P.l + ((tt - t0) / (t1 - t0)) * (W - P.l - P.r);
  const y = (s) => H - P.b - (s / s1) * (H - P.t - P.b);
  const NS = 'http://www.w3.org/2000/svg';
  const s = (tag, attrs, text) => {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    if (text !== undefined) el.textContent = text;
    return el;
  };
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': 'chart-title chart-desc' });
  svg.append(s('title', { id: 'chart-title' }, 'Tree size over time'),
    s('desc', { id: 'chart-desc' }, `From ${points.length} sampled entries: size ${points[0].size} at ${when(t0)} to ${s1} at ${when(t1)}.`),
    s('line', { class: 'axis', x1: P.l, y1: H - P.b, x2: W - P.r, y2: H - P.b }),
    s('line', { class: 'axis', x1: P.l, y1: P.t, x2: P.l, y2: H - P.b }),
    s('text', { x: P.l - 6, y: y(s1) + 4, 'text-anchor': 'end' }, String(s1)),
    s('text', { x: P.l - 6, y: H - P.b + 4, 'text-anchor': 'end' }, '0'),
    s('text', { x: P.l, y: H - 12, 'text-anchor': 'start' }, when(t0).slice(0, 16)),
    s('text', { x: W - P.r, y: H - 12, 'text-anchor': 'end' }, when(t1).slice(0, 16)),
    s('polyline', { class: 'line', points: points.map((p) => `${x(p.t).toFixed(1)},${y(p.size).toFixed(1)}`).join(' ') }));
  for (const p of points) svg.append(s('circle', { class: 'dot', cx: x(p.t).toFixed(1), cy: y(p.size).toFixed(1), r: 3 }));
  out.replaceChildren(h('h2', {}, 'Tree size over time'), h('figure', { class: 'chart', id: 'chart' }, svg,
    h('figcaption', {}, `Derived from the timestamps in ${points.length} sampled entries (entry i means size i+1 at its time). The log publishes no size history; entry times are what their signers wrote, not verified.`)));
}

// ---------------------------------------------------------------------------------------------
// One entry, with its inclusion proof checked here.
// ---------------------------------------------------------------------------------------------

async function renderEntry(index) {
  const out = $('#entry-result');
  $('#entry-index').value = String(index);
  $('#h-entry').textContent = `Entry #${index}`;
  out.replaceChildren(h('p', { role: 'status' }, 'Fetching the entry and its proof…'));
  const t = await trustOrSay(out, 'Not verified: no trust');
  if (!t) return;
  const cp = await get('/checkpoint');
  if (!cp.ok) { out.replaceChildren(verdict(false, 'No checkpoint', cp.error)); return; }
  const c = call(L.verify_checkpoint, cp.text, t.toml, now());
  const size = Number(c.size ?? 0);
  if (c.ok) rememberSize(t, size);
  if (!(index < size)) {
    out.replaceChildren(verdict(false, 'No such entry', `The checkpoint has ${size} entries (0–${size - 1}).`));
    return;
  }
  const e = await get(`/v1/entries?start=${index}&count=1`);
  if (!e.ok) { out.replaceChildren(verdict(false, 'Cannot read the entry', e.error)); return; }
  let leaf;
  try { leaf = JSON.parse(e.text).entries[0].leaf; } catch { leaf = null; }
  if (typeof leaf !== 'string') { out.replaceChildren(verdict(false, 'Cannot read the entry', 'the answer has no leaf')); return; }
  const p = await get(`/v1/proof/inclusion?index=${index}&size=${size}`);
  if (!p.ok) { out.replaceChildren(verdict(false, 'No inclusion proof', p.error)); return; }
  let inclusion;
  try { inclusion = JSON.stringify(JSON.parse(p.text).inclusion); } catch { inclusion = 'null'; }
  const v = call(L.verify_entry, leaf, index, inclusion, cp.text, t.toml, now());
  const d = v.entry || call(L.describe_leaf, leaf);
  const failed = (v.steps || []).find((s) => s.result === 'failed');
  out.replaceChildren(
    v.ok ? verdict(true, 'Included in the log', `Its inclusion proof leads to the root of the verified checkpoint of size ${size}.`)
      : verdict(false, `Not verified${failed ? `: ${failed.title} failed` : ''}`, (failed && failed.detail) || v.error || 'unknown'),
    h('h2', {}, 'Verification steps'), steps(v.steps),
    h('h2', {}, 'The entry'),
    facts([
      ['Index', String(index)],
      ['Leaf hash', h('code', { class: 'mono' }, v.leaf_hash ?? '—')],
      d && d.ok !== false ? ['Kind', d.kind] : null,
      d && d.sii ? ['Identifier', h('code', {}, d.sii)] : null,
      d && d.msp ? ['MSP', d.msp] : null,
      d && d.ssi ? ['SSI', h('code', {}, d.ssi)] : null,
      d && d.tags && d.tags.length ? ['Tags', d.tags.join(', ')] : null,
      d && d.signer ? ['Signer', d.signer] : null,
      d && d.time !== undefined ? ['Time', when(d.time)] : null,
      d && d.summary ? ['Summary', d.summary] : null,
    ]),
    h('details', {}, h('summary', {}, 'The leaf as logged'), h('pre', { id: 'leaf-text' }, leaf)),
    h('nav', { class: 'pager', 'aria-label': 'Neighbouring entries' },
      index > 0 ? h('a', { href: `#/entry/${index - 1}` }, '← Previous') : null,
      index + 1 < size ? h('a', { href: `#/entry/${index + 1}` }, 'Next →') : null,
      h('a', { href: '#/log' }, 'Back to the log')));
}

// ---------------------------------------------------------------------------------------------
// Routing: #/lookup?q=…&region=…, #/log?before=N, #/entry/N, #/trust.
// ---------------------------------------------------------------------------------------------

function route() {
  const hash = location.hash.replace(/^#\/?/, '') || 'lookup';
  const [path, query = ''] = hash.split('?');
  const q = new URLSearchParams(query);
  const [page, arg] = path.split('/');
  const name = ['lookup', 'log', 'entry', 'trust'].includes(page) ? page : 'lookup';
  for (const s of document.querySelectorAll('.page')) s.hidden = s.id !== `page-${name}`;
  for (const a of document.querySelectorAll('nav a[data-page]')) {
    if (a.dataset.page === (name === 'entry' ? 'log' : name)) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${{ lookup: 'Number lookup', log: 'The log', entry: `Entry ${arg ?? ''}`, trust: 'Trust' }[name]} · mimi-ledger explorer`;
  document.body.dataset.page = name;
  if (name === 'lookup') return renderLookup(q.get('q') || '', q.get('region') || '');
  if (name === 'log') return renderLog(Number(q.get('before')));
  if (name === 'entry') {
    const i = Number(arg);
    if (!Number.isInteger(i) || i < 0) { $('#entry-result').replaceChildren(); return undefined; }
    return renderEntry(i);
  }
  return renderTrust();
}

/** Renders the page of the current URL; `document.body.dataset.ready` is set when done (tests). */
async function show() {
  document.body.dataset.ready = 'false';
  try {
    await route();
  } catch (e) {
    $('#main').append(verdict(false, 'The explorer failed', String(e)));
  }
  document.body.dataset.ready = 'true';
}

function wire() {
  $('#lookup-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = $('#q').value.trim();
    const region = $('#region').value.trim();
    if (!q) { $('#q').focus(); return; }
    const target = `#/lookup?${new URLSearchParams(region ? { q, region } : { q })}`;
    if (location.hash === target) show(); else location.hash = target;
  });
  $('#entry-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = $('#entry-index').value.trim();
    if (v !== '') location.hash = `#/entry/${v}`;
  });
  $('#trust-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    useTrustText($('#trust-text').value, 'pasted');
  });
  $('#trust-file').addEventListener('change', async (ev) => {
    const f = ev.target.files && ev.target.files[0];
    if (!f) return;
    const text = await f.text();
    $('#trust-text').value = text;
    useTrustText(text, f.name);
  });
  $('#trust-forget').addEventListener('click', () => {
    try { localStorage.removeItem(TRUST_KEY); } catch { /* nothing stored */ }
    TRUST = null;
    $('#trust-text').value = '';
    $('#trust-message').textContent = 'Forgotten: the next check trusts the keys the Discovery Provider announces (trust on first use).';
    renderTrust();
  });
  window.addEventListener('hashchange', show);
}

async function main() {
  $('#dp-url').textContent = DP;
  try {
    await init();
  } catch (e) {
    $('#loading').textContent = `The WebAssembly verifier did not load: ${e}`;
    $('#loading').className = 'bad';
    document.body.dataset.ready = 'true';
    return;
  }
  let version = String(L.version());
  try { const v = JSON.parse(version); version = typeof v === 'string' ? v : v.version || version; } catch { /* plain */ }
  $('#wasm-version').textContent = `ledger-core ${version}`;
  $('#loading').remove();
  wire();
  await show();
}

main();
