// Drive the consent.js test page (index.html + dist/site.js) in headless Debian Chromium with
// playwright-core, and print one JSON summary on stdout: per step, what the page showed and
// every request it made to Sluice. Exits non-zero on a page error, a console error, a failed
// request or a 4xx/5xx answer, or a timeout; the summary still goes to stdout.
//
// Usage: node drive.mjs SCENARIO PAGE_URL SLUICE_URL
//   SCENARIO   main | unmapped | deny   (what tests/it/consent_js.rs set the workspace up for)
//   PAGE_URL   index.html on its own origin (the driver adds ?label=<browser context>)
//   SLUICE_URL the origin of the Sluice server
//
// The workspace has the enabled categories C0002 "Analytics", C0004 "Advertising" (each mapped to
// a destination) and C0005 "Functional" (mapped to none). Browser contexts (each a fresh visitor):
//   main:     A chooses Analytics with the keyboard, reopens and escapes the dialog, reloads,
//             then grants C0004 through the API; B rejects all, reloads; H grants only
//             Functional (no destination needs it); C has cookies disabled,
//             accepts all, reloads; F (data-cookie-domain=".shop.test") rejects all on
//             www.shop.test, then visits other.shop.test; G rejects all on an https page
//             (https://secure.shop.test, a real TLS server on 127.0.0.1), then reloads.
//             axe-core runs on A's banner and on A's dialog.
//   unmapped: D (a destination needs no consent, policy allow) just visits.
//   deny:     E (the same under policy deny) just visits.
import { chromium } from 'playwright-core'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:https'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const [scenario, pageUrl, sluiceUrl] = process.argv.slice(2)
if (!scenario || !pageUrl || !sluiceUrl) {
  console.error('usage: node drive.mjs main|unmapped|deny PAGE_URL SLUICE_URL')
  process.exit(2)
}

const started = Date.now()
const STEP_TIMEOUT_MS = 15_000
const TOTAL_TIMEOUT_MS = 60_000
// How long "nothing is sent" is watched for. analytics-next loads and sends within a few
// hundred milliseconds when it is allowed to (the unmapped scenario shows it).
const QUIET_MS = 1_000
const UPDATED = 'Segment Consent Preference Updated'

const summary = { scenario, steps: {}, requests: [], console: [], problems: [], ms: 0 }
const requests = summary.requests // to Sluice, in the order they were made
let browser

async function finish(code) {
  summary.ms = Date.now() - started
  process.stdout.write(JSON.stringify(summary) + '\n')
  await browser?.close().catch(() => {})
  process.exit(code)
}
const fail = (problem) => {
  summary.problems.push(problem)
  return finish(1)
}
setTimeout(() => fail(`timed out after ${TOTAL_TIMEOUT_MS} ms`), TOTAL_TIMEOUT_MS).unref()

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function until(what, check) {
  const deadline = Date.now() + STEP_TIMEOUT_MS
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    if (summary.problems.length) throw new Error(`while waiting for ${what}: ${summary.problems[0]}`)
    await sleep(25)
  }
}

// The name of an event as the tests compare it: the track event's name, "page <name>", or the type.
const eventName = (body) =>
  body?.event ?? (body?.type === 'page' ? `page ${body.name}` : body?.type ?? '?')
const since = (mark) => requests.slice(mark)
const posted = (mark, name) =>
  since(mark).some((r) => r.method === 'POST' && r.status !== null && eventName(r.body) === name)

// Record every request a context's pages make to Sluice, and every problem; and every string
// a page writes to document.cookie for tracking-preferences (the attributes as written:
// Chromium reports a cookie without SameSite as Lax, so only the written string shows it).
async function watch(context, label) {
  await context.addInitScript(() => {
    const cookie = Object.getOwnPropertyDescriptor(Document.prototype, 'cookie')
    const writes = (window.__cookieWrites = [])
    Object.defineProperty(Document.prototype, 'cookie', {
      configurable: true,
      enumerable: cookie.enumerable,
      get() {
        return cookie.get.call(this)
      },
      set(value) {
        if (String(value).startsWith('tracking-preferences=')) writes.push(String(value))
        cookie.set.call(this, value)
      },
    })
  })
  const open = new Map()
  context.on('request', (request) => {
    if (!request.url().startsWith(sluiceUrl + '/')) return
    let body = null
    const text = request.postData()
    if (text) {
      try { body = JSON.parse(text) } catch { body = text }
    }
    const record = {
      context: label,
      method: request.method(),
      path: request.url().slice(sluiceUrl.length),
      status: null,
      event: body ? eventName(body) : null,
      body,
    }
    open.set(request, record)
    requests.push(record)
  })
  context.on('requestfinished', async (request) => {
    const record = open.get(request)
    if (!record) return
    const response = await request.response()
    record.status = response?.status() ?? null
    if (record.status === null || record.status >= 400) {
      summary.problems.push(`${record.method} ${record.path} answered ${record.status}`)
    }
  })
  context.on('requestfailed', (request) =>
    summary.problems.push(`request failed: ${request.method()} ${request.url()}: ${request.failure()?.errorText}`)
  )
  context.on('page', (page) => {
    page.on('pageerror', (error) => summary.problems.push(`[${label}] page error: ${error.message}`))
    page.on('console', (message) => {
      const line = `[${label}] ${message.type()}: ${message.text()}`
      summary.console.push(line)
      if (message.type() === 'error') summary.problems.push(`console ${line}`)
    })
  })
}

async function visit(page, label) {
  await page.goto(`${pageUrl}?label=${label}`)
  await page.evaluate(() => window.sluiceConsent.ready)
}

const banner = (page) => page.getByRole('region', { name: 'Privacy choices' })
const dialog = (page) => page.getByRole('dialog', { name: 'Privacy preferences' })

// What the page shows and what consent.js and the site know.
async function state(page) {
  const inPage = await page.evaluate(() => ({
    get: window.sluiceConsent.get(),
    categories: window.sluiceConsent.categories(),
    changes: window.site.changes,
    // analytics-next has loaded (consent.js called load()).
    loaded: window.analytics.instance !== undefined,
    cookieWrites: window.__cookieWrites,
  }))
  return {
    ...inPage,
    bannerVisible: await banner(page).isVisible(),
    dialogVisible: await dialog(page).isVisible(),
  }
}

// The element focused inside consent.js's shadow root: a checkbox's value or a button's text.
const focused = (page) =>
  page.evaluate(() => {
    const active = document.getElementById('sluice-consent')?.shadowRoot?.activeElement
    if (!active) return document.activeElement?.id ? `#${document.activeElement.id}` : null
    return active.tagName === 'INPUT' ? `checkbox ${active.value}` : `button ${active.textContent}`
  })

async function preferencesCookie(context) {
  return (await context.cookies())
    .filter((c) => c.name === 'tracking-preferences')
    .map((c) => ({ ...c, decoded: JSON.parse(decodeURIComponent(c.value)) }))
}

// Each category's checkbox, found by its accessible name (its label).
async function checkboxes(page, categories) {
  const out = []
  for (const { id, name } of categories) {
    const box = dialog(page).getByRole('checkbox', { name, exact: true })
    out.push({ id, name, found: await box.count(), checked: await box.isChecked() })
  }
  return out
}

// axe-core on the whole page, consent.js's shadow root included. Returns the violations and how
// many elements inside the shadow root axe examined (so a run that missed it shows up).
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')
async function axe(page) {
  await page.evaluate(AXE)
  return page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const result = await axe.run(document)
    const inBanner = new Set()
    for (const kind of ['passes', 'violations', 'incomplete']) {
      for (const rule of result[kind]) {
        for (const node of rule.nodes) {
          // An element in a shadow tree is targeted as [[host selector, selector inside]].
          const path = node.target.flat()
          if (path.length > 1 && path[0] === '#sluice-consent') inBanner.add(path.join(' >> '))
        }
      }
    }
    return {
      violations: result.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        nodes: v.nodes.map((n) => n.target.flat().join(' >> ')),
      })),
      consentElements: inBanner.size,
    }
  })
}

// An https server on 127.0.0.1 (a self-signed certificate for secure.shop.test, made with the
// openssl command) answering with what the plain page server at `origin` answers.
async function httpsPages(origin) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-consent-js-'))
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-days', '1', '-subj', '/CN=secure.shop.test', '-addext', 'subjectAltName=DNS:secure.shop.test',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: ['ignore', 'ignore', 'pipe'] })
    const key = readFileSync(join(dir, 'key.pem'))
    const cert = readFileSync(join(dir, 'cert.pem'))
    const server = createServer({ key, cert }, async (request, response) => {
      try {
        const answer = await fetch(origin + request.url)
        response.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'text/plain' })
        response.end(Buffer.from(await answer.arrayBuffer()))
      } catch (error) {
        response.writeHead(502).end(String(error))
      }
    })
    await new Promise((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve))
    return { port: server.address().port, close: () => server.close() }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

async function main() {
  const steps = summary.steps

  // ---- A: choose "Analytics" with the keyboard ------------------------------------------
  const a = await browser.newContext()
  await watch(a, 'A')
  const pa = await a.newPage()
  let mark = requests.length
  await visit(pa, 'A')
  await banner(pa).waitFor({ state: 'visible' })
  await pa.evaluate(() => { window.analytics.track('A Before Choice') })
  await sleep(QUIET_MS)
  steps.A_before = {
    ...(await state(pa)),
    bannerText: await banner(pa).innerText(),
    focusedOnLoad: await focused(pa),
    cookie: await preferencesCookie(a),
    // Nothing stored for the visitor before a choice: no cookie, no analytics-next storage.
    cookies: (await a.cookies()).map((c) => c.name),
    localStorage: await pa.evaluate(() => Object.keys(localStorage)),
    axe: await axe(pa),
    requests: since(mark),
  }

  // The first Tab on the page reaches the banner; Tab again moves on to "Choose…".
  await pa.keyboard.press('Tab')
  steps.A_before.firstTab = await focused(pa)
  await pa.keyboard.press('Tab')
  steps.A_before.secondTab = await focused(pa)
  await pa.keyboard.press('Enter')
  await dialog(pa).waitFor({ state: 'visible' })
  const categories = steps.A_before.categories
  steps.A_dialog = {
    focused: await focused(pa),
    checkboxes: await checkboxes(pa, categories),
    axe: await axe(pa),
  }
  await pa.keyboard.press('Space') // ticks the focused (first) checkbox: Analytics
  const tabbed = []
  for (let i = 0; i < 10 && (await focused(pa)) !== 'button Save choices'; i++) {
    await pa.keyboard.press('Tab')
    tabbed.push(await focused(pa))
  }
  steps.A_dialog.tabbed = tabbed
  steps.A_dialog.beforeSave = await checkboxes(pa, categories)
  await pa.keyboard.press('Enter')
  await until('the consent update, page A and "A Before Choice" to reach Sluice', () =>
    posted(mark, UPDATED) && posted(mark, 'page A') && posted(mark, 'A Before Choice'))
  await pa.evaluate(() => { window.analytics.track('A After Choice') })
  await until('"A After Choice"', () => posted(mark, 'A After Choice'))
  steps.A_chosen = { ...(await state(pa)), cookie: await preferencesCookie(a), requests: since(mark) }

  // Reopen through the site's own button; Escape closes without changing anything.
  mark = requests.length
  await pa.getByRole('button', { name: 'Privacy settings' }).click()
  await dialog(pa).waitFor({ state: 'visible' })
  const reopened = await checkboxes(pa, categories)
  await pa.keyboard.press('Escape')
  await dialog(pa).waitFor({ state: 'hidden' })
  await sleep(300)
  steps.A_escape = {
    reopened,
    focusAfter: await focused(pa),
    ...(await state(pa)),
    requests: since(mark),
  }

  // Reload: the cookie answers; analytics-next loads at once.
  mark = requests.length
  await pa.reload()
  await pa.evaluate(() => window.sluiceConsent.ready)
  await until('page A after the reload', () => posted(mark, 'page A'))
  await pa.evaluate(() => { window.analytics.track('A After Reload') })
  await until('"A After Reload"', () => posted(mark, 'A After Reload'))
  steps.A_reload = { ...(await state(pa)), requests: since(mark) }

  // A change through the API, then the same choice again (no change).
  mark = requests.length
  const returned = await pa.evaluate(() => window.sluiceConsent.set({ C0004: true }))
  await until('the second consent update', () => posted(mark, UPDATED))
  await pa.evaluate(() => { window.analytics.track('A Both Granted') })
  await until('"A Both Granted"', () => posted(mark, 'A Both Granted'))
  const again = await pa.evaluate(() => window.sluiceConsent.set({ C0004: true, C0002: true }))
  await sleep(300)
  steps.A_set = {
    returned,
    again,
    ...(await state(pa)),
    cookie: await preferencesCookie(a),
    requests: since(mark),
  }
  await a.close()

  // ---- B: "Reject all" ------------------------------------------------------------------
  const b = await browser.newContext()
  await watch(b, 'B')
  const pb = await b.newPage()
  mark = requests.length
  await visit(pb, 'B')
  await banner(pb).waitFor({ state: 'visible' })
  await banner(pb).getByRole('button', { name: 'Reject all' }).click()
  await pb.evaluate(() => { window.analytics.track('B After Reject') })
  await sleep(QUIET_MS)
  steps.B_rejected = { ...(await state(pb)), cookie: await preferencesCookie(b), requests: since(mark) }
  mark = requests.length
  await pb.reload()
  await pb.evaluate(() => window.sluiceConsent.ready)
  await pb.evaluate(() => { window.analytics.track('B After Reload') })
  await sleep(QUIET_MS)
  steps.B_reload = { ...(await state(pb)), requests: since(mark) }
  await b.close()

  // ---- H: only "Functional", which no destination needs ----------------------------------
  const h = await browser.newContext()
  await watch(h, 'H')
  const ph = await h.newPage()
  mark = requests.length
  await visit(ph, 'H')
  await banner(ph).getByRole('button', { name: 'Choose…' }).click()
  await dialog(ph).getByRole('checkbox', { name: 'Functional', exact: true }).check()
  await dialog(ph).getByRole('button', { name: 'Save choices' }).click()
  await ph.evaluate(() => { window.analytics.track('H After Choice') })
  await sleep(QUIET_MS)
  steps.H_functional = { ...(await state(ph)), cookie: await preferencesCookie(h), requests: since(mark) }
  await h.close()

  // ---- C: cookies disabled ----------------------------------------------------------------
  // Chromium's DevTools protocol switches document.cookie off for this page (reads give "",
  // writes are ignored), across reloads. The probe below shows it.
  const c = await browser.newContext()
  await watch(c, 'C')
  const pc = await c.newPage()
  const cdp = await c.newCDPSession(pc)
  await cdp.send('Emulation.setDocumentCookieDisabled', { disabled: true })
  const probe = () =>
    pc.evaluate(() => {
      document.cookie = 'probe=1; Path=/'
      return document.cookie
    })
  mark = requests.length
  await visit(pc, 'C')
  await banner(pc).waitFor({ state: 'visible' })
  await pc.evaluate(() => { window.analytics.track('C Before Choice') })
  await sleep(QUIET_MS)
  steps.C_before = { ...(await state(pc)), documentCookie: await probe(), requests: since(mark) }
  mark = requests.length
  await banner(pc).getByRole('button', { name: 'Accept all' }).click()
  await until('the consent update, page C and "C Before Choice"', () =>
    posted(mark, UPDATED) && posted(mark, 'page C') && posted(mark, 'C Before Choice'))
  steps.C_accepted = { ...(await state(pc)), cookies: await c.cookies(), requests: since(mark) }
  mark = requests.length
  await pc.reload()
  await pc.evaluate(() => window.sluiceConsent.ready)
  await banner(pc).waitFor({ state: 'visible' })
  await pc.evaluate(() => { window.analytics.track('C After Reload') })
  await sleep(QUIET_MS)
  steps.C_reload = { ...(await state(pc)), documentCookie: await probe(), requests: since(mark) }
  await c.close()

  // ---- F: data-cookie-domain ------------------------------------------------------------
  // shared.html carries data-cookie-domain=".shop.test"; Chromium resolves *.shop.test to
  // 127.0.0.1 (--host-resolver-rules). Reject on www.shop.test, then visit other.shop.test.
  const f = await browser.newContext()
  await watch(f, 'F')
  const port = new URL(pageUrl).port
  const pf = await f.newPage()
  mark = requests.length
  await pf.goto(`http://www.shop.test:${port}/shared.html?label=F`)
  await pf.evaluate(() => window.sluiceConsent.ready)
  await banner(pf).getByRole('button', { name: 'Reject all' }).click()
  const www = await state(pf)
  await pf.goto(`http://other.shop.test:${port}/shared.html?label=F`)
  await pf.evaluate(() => window.sluiceConsent.ready)
  steps.F_shared = { www, other: await state(pf), cookie: await preferencesCookie(f), requests: since(mark) }
  await f.close()

  // ---- G: an https page -----------------------------------------------------------------
  // A real TLS server on 127.0.0.1 (httpsPages) serves the same page; Chromium resolves
  // secure.shop.test to 127.0.0.1 and accepts the test certificate. Page and Sluice are both on
  // loopback, as a site and its Sluice on one network are: Chromium's Local Network Access
  // check (public page -> local address) does not apply. Reject all, then reload.
  const tls = await httpsPages(new URL(pageUrl).origin)
  const g = await browser.newContext({ ignoreHTTPSErrors: true })
  await watch(g, 'G')
  const pg = await g.newPage()
  mark = requests.length
  await pg.goto(`https://secure.shop.test:${tls.port}/index.html?label=G`)
  await pg.evaluate(() => window.sluiceConsent.ready)
  const secureContext = await pg.evaluate(() => window.isSecureContext)
  await banner(pg).getByRole('button', { name: 'Reject all' }).click()
  const rejected = await state(pg)
  await pg.reload()
  await pg.evaluate(() => window.sluiceConsent.ready)
  await pg.evaluate(() => { window.analytics.track('G After Reload') })
  await sleep(QUIET_MS)
  steps.G_https = {
    secureContext,
    rejected,
    reload: await state(pg),
    cookie: await preferencesCookie(g),
    requests: since(mark),
  }
  await g.close()
  tls.close()
}

// A fresh visitor who does not answer the banner.
async function visitOnly(label, expectLoad) {
  const context = await browser.newContext()
  await watch(context, label)
  const page = await context.newPage()
  const mark = requests.length
  await visit(page, label)
  await banner(page).waitFor({ state: 'visible' })
  // Not awaited in the page: before analytics-next loads, the call stays buffered.
  await page.evaluate((label) => { window.analytics.track(`${label} Before Choice`) }, label)
  if (expectLoad) {
    await until(`page ${label} and "${label} Before Choice"`, () =>
      posted(mark, `page ${label}`) && posted(mark, `${label} Before Choice`))
  } else {
    await sleep(QUIET_MS)
  }
  summary.steps[label] = { ...(await state(page)), requests: since(mark) }
  await context.close()
}

try {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
      // For the data-cookie-domain check (two subdomains of one site) and the https page, all
      // served on 127.0.0.1.
      '--host-resolver-rules=MAP *.shop.test 127.0.0.1',
    ],
  })
  if (scenario === 'main') await main()
  else if (scenario === 'unmapped') await visitOnly('D', true)
  else if (scenario === 'deny') await visitOnly('E', false)
  else throw new Error(`unknown scenario ${scenario}`)
  await finish(summary.problems.length ? 1 : 0)
} catch (error) {
  await fail(`driver: ${error?.stack ?? error}`)
}
