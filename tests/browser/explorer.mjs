// Headless-Chromium checks of the web explorer (issue #16), run by tests/tests/explorer.rs, which
// starts the real log-server (and a witness), fills it, starts a lying DP proxy in front of it and
// passes everything by environment variables:
//
//   EXPLORER_URL   the explorer on the honest log, e.g. http://127.0.0.1:PORT/explorer/
//   LYING_URL      the explorer served through the tampering proxy (tests/src/tamper.rs)
//   TRUST_FILE     the log's real trust file (witnesses and quorum included)
//   MAPPED_INPUT / MAPPED_SII / MAPPED_SSIS (comma-separated) / MAPPED_ATTESTED_BY / WITNESS_NAME
//   OPTED_INPUT / OPTED_SII / OPTED_HIDDEN_SSI   (the mapping the opt-out overrode)
//   UNMAPPED_INPUT / UNMAPPED_REGION / UNMAPPED_SII
//   ENTRY_INDEX    an entry to open;  LOG_SIZE  the log's size (at least)
//   OTHER_ORIGIN_URL the explorer served from another origin (a DP mirror), opened with ?dp=DP_URL
//   DP_URL         the honest log's base URL
//   SCREENSHOT_DIR where the screenshots go;  CHROMIUM  the browser (default /usr/bin/chromium)
//
// It prints one JSON summary line last ({"ok", "checks": [{name, ok, detail}], "requests",
// "foreign", "screenshots"}) and exits 0 only when every check passed and the page made no request
// to any host but the two DPs under test.
import { chromium } from 'playwright-core';
import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = process.env;
const need = (k) => {
  if (!env[k]) { console.error(`explorer.mjs: ${k} is not set`); process.exit(2); }
  return env[k];
};
const EXPLORER = need('EXPLORER_URL');
const LYING = need('LYING_URL');
const TRUST = readFileSync(need('TRUST_FILE'), 'utf8');
const SHOTS = need('SCREENSHOT_DIR');
mkdirSync(SHOTS, { recursive: true });
const OTHER = need('OTHER_ORIGIN_URL');
const DP_URL = need('DP_URL');
const allowedHosts = new Set([new URL(EXPLORER).host, new URL(LYING).host, new URL(OTHER).host]);

const checks = [];
const screenshots = [];
const requests = [];
const foreign = [];
const pageErrors = [];

function check(name, ok, detail = '') {
  checks.push({ name, ok: Boolean(ok), detail: String(detail) });
  console.error(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? ` — ${detail}` : ''}`);
}

const browser = await chromium.launch({
  executablePath: env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // The machine's network is closed: without these Chromium keeps trying its own services.
  // Playwright gives every launch a fresh temporary profile (user-data dir).
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

async function context(opts = {}) {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 900 }, ...opts });
  ctx.on('request', (r) => {
    const url = r.url();
    requests.push(url);
    if (url.startsWith('data:')) return;
    let host = null;
    try { host = new URL(url).host; } catch { /* unparsable */ }
    if (!allowedHosts.has(host)) foreign.push(url);
  });
  ctx.on('page', (p) => watch(p));
  return ctx;
}

function watch(page) {
  page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`);
  });
}

/** Waits until the explorer finished rendering the current URL and `sel` is there. */
async function settled(page, sel) {
  await page.waitForFunction((s) => document.body.dataset.ready === 'true' && document.querySelector(s),
    sel, { timeout: 30000 });
}

async function open(ctx, base, hash, sel) {
  const page = await ctx.newPage();
  await page.goto(base + hash);
  await settled(page, sel);
  return page;
}

async function shot(page, name) {
  const path = join(SHOTS, name);
  await page.screenshot({ path, fullPage: true });
  screenshots.push(path);
}

const text = (page, sel) => page.$eval(sel, (e) => e.textContent.trim()).catch(() => null);
const attr = (page, sel, a) => page.$eval(sel, (e, a) => e.getAttribute(a), a).catch(() => null);
const stepResults = (page) => page.$$eval('#steps li', (ls) => ls.map((l) => [l.dataset.step, l.dataset.result]));

async function pasteTrust(page) {
  await page.goto(page.url().split('#')[0] + '#/trust');
  await settled(page, '#trust-verdict');
  await page.fill('#trust-text', TRUST);
  await page.click('#trust-form button[type=submit]');
  await page.waitForSelector('#trust-verdict[data-source="file"]', { timeout: 10000 });
}

/** Types `input` (and a region) into the lookup form and submits it with Enter. */
async function lookup(page, input, region = '') {
  await page.goto(page.url().split('#')[0] + '#/lookup');
  await settled(page, '#q');
  await page.fill('#q', input);
  await page.fill('#region', region);
  await page.focus('#q');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.body.dataset.ready === 'true'
    && document.querySelector('#lookup-result #verdict'), null, { timeout: 30000 });
}

async function verifiedLookup(page, name, input, region, sii, status) {
  await lookup(page, input, region);
  const canon = await text(page, '#canonical-sii');
  check(`${name}: canonical SII from "${input}"${region ? ` (region ${region})` : ''}`, canon === sii, canon);
  check(`${name}: verified`, (await attr(page, '#verdict', 'data-ok')) === 'true', await text(page, '#verdict'));
  check(`${name}: status ${status}`, (await attr(page, '#status', 'data-status')) === status, await text(page, '#status'));
  const steps = await stepResults(page);
  const names = steps.map((s) => s[0]);
  check(`${name}: every step ✓ including completeness`,
    steps.length > 0 && steps.every((s) => s[1] === 'ok') && names.includes('completeness')
      && names.includes('checkpoint-signature') && names.includes('witness-quorum'),
    JSON.stringify(steps));
}

let exitCode = 1;
try {
  // ---- 6a. Trust on first use: no trust file given.
  {
    const ctx = await context();
    const page = await open(ctx, EXPLORER, '#/trust', '#trust-verdict');
    check('trust: TOFU notice without a trust file',
      (await attr(page, '#trust-verdict', 'data-source')) === 'tofu'
        && /trust on first use/i.test(await text(page, '#trust-banner') || '')
        && /trust on first use/i.test(await text(page, '#trust-verdict') || ''),
      await text(page, '#trust-verdict'));
    await shot(page, 'explorer-trust-tofu.png');
    // ---- 6b. Load the trust file with the file picker.
    await page.setInputFiles('#trust-file', need('TRUST_FILE'));
    await page.waitForSelector('#trust-verdict[data-source="file"]', { timeout: 10000 });
    check('trust: a loaded trust file is in force',
      (await text(page, '#trust-origin')) !== null && /in force/.test(await text(page, '#trust-message') || ''),
      await text(page, '#trust-message'));
    await ctx.close();
  }

  const honest = await context();
  const page = await open(honest, EXPLORER, '#/trust', '#trust-verdict');
  // ---- 6c. Paste the trust file.
  await pasteTrust(page);
  const witnesses = await page.$$eval('#trust-witnesses li', (ls) => ls.length).catch(() => 0);
  check('trust: the pasted trust file is in force, with its witnesses',
    (await attr(page, '#trust-banner', 'data-trust')) === 'file' && witnesses >= 1, `${witnesses} witness(es)`);
  await shot(page, 'explorer-trust.png');

  // ---- 7a. Every form control has a label.
  const unlabelled = await page.$$eval('input, textarea, select', (els) => els
    .filter((e) => e.type !== 'hidden' && !(e.id && document.querySelector(`label[for="${e.id}"]`)))
    .map((e) => e.outerHTML));
  check('accessibility: every input has a <label for>', unlabelled.length === 0, unlabelled.join(' '));

  // ---- 1. The mapped number, typed as a person would, submitted with Enter.
  await verifiedLookup(page, 'mapped', need('MAPPED_INPUT'), '', need('MAPPED_SII'), 'mapped');
  const mappings = await text(page, '#mappings') || '';
  const ssis = need('MAPPED_SSIS').split(',');
  check('mapped: every mapping shown with MSP, SSI, tags and attestation',
    ssis.every((s) => mappings.includes(s)) && mappings.includes(need('MAPPED_ATTESTED_BY'))
      && mappings.includes('Personal'), mappings);
  const cos = await text(page, '#cosigners') || '';
  check('mapped: witness cosignatures shown with their age',
    Number(await attr(page, '#cosigners', 'data-count')) >= 1 && cos.includes(need('WITNESS_NAME')) && /ago/.test(cos), cos);
  check('mapped: history shown', ((await text(page, '#history')) || '').includes('#'), await text(page, '#history'));
  await shot(page, 'explorer-lookup.png');

  // ---- 2. The opted-out number.
  await verifiedLookup(page, 'opted-out', need('OPTED_INPUT'), '', need('OPTED_SII'), 'opted-out');

  // ---- 3. An unmapped number, national format with a default region: absence proven.
  await verifiedLookup(page, 'unmapped', need('UNMAPPED_INPUT'), need('UNMAPPED_REGION'), need('UNMAPPED_SII'), 'none');
  check('unmapped: absence proven by the map', (await text(page, '#absence')) !== null, await text(page, '#absence'));
  await shot(page, 'explorer-lookup-unmapped.png');

  // ---- 5a. The log page.
  await page.goto(EXPLORER + '#/log');
  await settled(page, '#log-size');
  await page.waitForSelector('#entries', { timeout: 30000 });
  await page.waitForSelector('#chart', { timeout: 30000 });
  const size = Number(await text(page, '#log-size'));
  check('log: checkpoint verified, size and cosignatures shown',
    (await attr(page, '#verdict', 'data-ok')) === 'true' && size >= Number(need('LOG_SIZE'))
      && Number(await attr(page, '#cosigners', 'data-count')) >= 1, `size ${size}`);
  const rows = await page.$$eval('#entries tbody tr', (r) => r.length);
  check('log: recent entries (paged) and the tree-size chart', rows === Math.min(20, size)
    && (await page.$('#older')) !== null === (size > 20)
    && (await page.$$eval('#chart circle', (c) => c.length)) >= 2, `${rows} rows`);
  await shot(page, 'explorer-log.png');

  // ---- 5b. An entry page verifies its inclusion proof in the browser.
  const idx = need('ENTRY_INDEX');
  await page.goto(EXPLORER + `#/entry/${idx}`);
  await settled(page, '#entry-result #verdict');
  const esteps = await stepResults(page);
  check(`entry ${idx}: inclusion proof ✓`, (await attr(page, '#verdict', 'data-ok')) === 'true'
    && esteps.some((s) => s[0] === 'inclusion-proof' && s[1] === 'ok') && esteps.every((s) => s[1] === 'ok'),
  JSON.stringify(esteps));
  await shot(page, 'explorer-entry.png');

  // ---- 7b. A phone-size viewport.
  {
    const phone = await context({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const p = await open(phone, EXPLORER, '#/trust', '#trust-verdict');
    await pasteTrust(p);
    await lookup(p, need('MAPPED_INPUT'));
    const width = await p.evaluate(() => document.documentElement.scrollWidth);
    check('phone: the lookup verifies and fits a 390 px screen',
      (await attr(p, '#verdict', 'data-ok')) === 'true' && width <= 391, `scrollWidth ${width}`);
    await shot(p, 'explorer-lookup-phone.png');
    await p.goto(EXPLORER + '#/log');
    await settled(p, '#log-size');
    await p.waitForSelector('#entries', { timeout: 30000 });
    await shot(p, 'explorer-log-phone.png');
    await phone.close();
  }

  // ---- 4. The same lookups against a lying DP, with the true trust file.
  {
    const liar = await context();
    const p = await open(liar, LYING, '#/trust', '#trust-verdict');
    await pasteTrust(p);
    // The proxy hides the last entry of each answer and refolds: the mapped number loses one
    // mapping, the opted-out one reads as the mapping its opt-out overrode.
    for (const [name, input] of [
      ['lying DP, mapped number', need('MAPPED_INPUT')],
      ['lying DP, opted-out number', need('OPTED_INPUT')],
    ]) {
      await lookup(p, input);
      const steps = await stepResults(p);
      const failed = steps.find((s) => s[1] === 'failed');
      const result = await text(p, '#lookup-result') || '';
      check(`${name}: the failed step and why, never a verified answer`,
        (await attr(p, '#verdict', 'data-ok')) === 'false' && failed !== undefined
          && (await p.$('#mappings')) === null && !/Verified/.test(result) && !result.includes('mimi://')
          && !result.includes(need('OPTED_HIDDEN_SSI'))
          && !/Mapped|Opted out/.test(await text(p, '#status') || ''),
        `failed at ${failed ? failed[0] : 'none'}: ${await text(p, 'ol.steps li[data-result="failed"] .detail')}`);
      check(`${name}: caught at completeness (step 5)`, failed && failed[0] === 'completeness', JSON.stringify(steps));
      if (name.includes('mapped')) await shot(p, 'explorer-lookup-lying.png');
    }
    // ---- 5c. A tampered inclusion proof fails.
    await p.goto(LYING + `#/entry/${idx}`);
    await settled(p, '#entry-result #verdict');
    const lsteps = await stepResults(p);
    check(`lying DP, entry ${idx}: the tampered inclusion proof fails`,
      (await attr(p, '#verdict', 'data-ok')) === 'false'
        && lsteps.some((s) => s[0] === 'inclusion-proof' && s[1] === 'failed'), JSON.stringify(lsteps));
    await shot(p, 'explorer-entry-lying.png');
    await liar.close();
  }
  await honest.close();

  // ---- 8. A copy of the explorer on another origin, reading the DP with ?dp= (CORS).
  {
    const other = await context();
    const base = `${OTHER}?dp=${encodeURIComponent(DP_URL)}`;
    const p = await open(other, base, '#/trust', '#trust-verdict');
    const seen = [];
    p.on('request', (r) => seen.push(r.url()));
    await pasteTrust(p);
    await lookup(p, need('MAPPED_INPUT'));
    const api = seen.filter((u) => /\/v1\/|\/checkpoint/.test(u));
    check('another origin with ?dp=: the lookup verifies, reading the DP cross-origin',
      (await attr(p, '#verdict', 'data-ok')) === 'true' && api.length > 0
        && api.every((u) => u.startsWith(DP_URL + '/')), api.join(' '));
    await other.close();
  }

  check('no request to any host but the DPs under test', foreign.length === 0, foreign.join(' '));
  check('no script error or CSP violation', pageErrors.length === 0, pageErrors.join(' | '));
  exitCode = checks.every((c) => c.ok) ? 0 : 1;
} catch (e) {
  check('the run completed', false, e.stack || String(e));
} finally {
  await browser.close();
}
console.log(JSON.stringify({ ok: exitCode === 0, checks, requests: requests.length, foreign, screenshots }));
process.exit(exitCode);
