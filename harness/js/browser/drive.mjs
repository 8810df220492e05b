// Drive index.html in headless Debian Chromium (playwright-core, no browser download) and print
// one JSON summary on stdout. Exits non-zero on a page error, a console error, a failed
// request, a non-2xx answer, or a timeout; the summary (or what there is of it) still goes to
// stdout so the caller can show it.
//
// Usage: node drive.mjs PAGE_URL SLUICE_URL
//   PAGE_URL   index.html on its own origin, with ?sluice=SLUICE_URL&writeKey=...&granted=...
//   SLUICE_URL the origin of the Sluice server (where settings and events must go)
//
// Steps: wait for analytics-next to load its settings; identify, page and track "Before
// Consent"; grant C0004 in the fake CMP (consent-tools then sends "Segment Consent Preference
// Updated"); track "After Consent". Each step waits until Sluice has answered the requests.
import { chromium } from 'playwright-core'

const [pageUrl, sluiceUrl] = process.argv.slice(2)
if (!pageUrl || !sluiceUrl) {
  console.error('usage: node drive.mjs PAGE_URL SLUICE_URL')
  process.exit(2)
}

const started = Date.now()
const STEP_TIMEOUT_MS = 15_000
const TOTAL_TIMEOUT_MS = 45_000

const summary = { pageUrl, sluiceUrl, loaded: null, requests: [], console: [], problems: [], ms: 0 }
let browser

let preflights = new Map()

async function finish(code) {
  summary.ms = Date.now() - started
  summary.preflights = [...preflights.values()]
  process.stdout.write(JSON.stringify(summary) + '\n')
  await browser?.close().catch(() => {})
  process.exit(code)
}

const fail = (problem) => {
  summary.problems.push(problem)
  return finish(1)
}

setTimeout(() => fail(`timed out after ${TOTAL_TIMEOUT_MS} ms`), TOTAL_TIMEOUT_MS).unref()

// Poll `check` (on the driver's side) until it is truthy.
async function until(what, check) {
  const deadline = Date.now() + STEP_TIMEOUT_MS
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    if (summary.problems.length) throw new Error(`while waiting for ${what}: ${summary.problems[0]}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

const toSluice = (r) => r.url.startsWith(sluiceUrl + '/')
const eventPosts = () => summary.requests.filter((r) => toSluice(r) && r.method === 'POST')
const posted = (name) =>
  eventPosts().some((r) => r.body?.event === name || (r.body?.type === name && !r.body?.event))

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
    ],
  })
  const page = await browser.newPage()

  // CORS preflights are invisible to Playwright's request events; the DevTools protocol shows them.
  const cdp = await page.context().newCDPSession(page)
  await cdp.send('Network.enable')
  const lower = (headers = {}) =>
    Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]))
  cdp.on('Network.requestWillBeSent', ({ requestId, request }) => {
    if (request.method !== 'OPTIONS') return
    preflights.set(requestId, { url: request.url, request: lower(request.headers), status: null, response: null })
  })
  cdp.on('Network.requestWillBeSentExtraInfo', ({ requestId, headers }) => {
    const preflight = preflights.get(requestId)
    if (preflight) Object.assign(preflight.request, lower(headers))
  })
  cdp.on('Network.responseReceived', ({ requestId, response }) => {
    const preflight = preflights.get(requestId)
    if (!preflight) return
    preflight.status = response.status
    preflight.response = lower(response.headers)
  })

  page.on('pageerror', (error) => summary.problems.push(`page error: ${error.message}`))
  page.on('console', (message) => {
    const where = message.location()?.url
    const line = `${message.type()}: ${message.text()}${where ? ` (${where})` : ''}`
    summary.console.push(line)
    if (message.type() === 'error') summary.problems.push(`console ${line}`)
  })
  page.on('requestfailed', (request) =>
    summary.problems.push(`request failed: ${request.method()} ${request.url()}: ${request.failure()?.errorText}`)
  )
  page.on('requestfinished', async (request) => {
    const response = await request.response()
    const headers = await request.allHeaders()
    const record = {
      method: request.method(),
      url: request.url(),
      status: response?.status() ?? null,
      headers: {
        authorization: headers.authorization ?? null,
        'content-type': headers['content-type'] ?? null,
        origin: headers.origin ?? null,
      },
      body: null,
      response: null,
    }
    const text = request.postData()
    if (text) {
      try { record.body = JSON.parse(text) } catch { record.body = text }
    }
    if (toSluice(record)) {
      const answer = await response?.text().catch(() => null)
      try { record.response = JSON.parse(answer) } catch { record.response = answer }
    }
    summary.requests.push(record)
    if (record.status === null || record.status >= 400) {
      summary.problems.push(`${record.method} ${record.url} answered ${record.status}`)
    }
  })

  await page.goto(pageUrl)
  summary.loaded = await page.evaluate(() => window.harness.ready)

  // Before consent for C0004.
  await page.evaluate(async () => {
    const { analytics } = window.harness
    await analytics.identify('browser-user', { plan: 'trial' })
    await analytics.page('Home')
    await analytics.track('Before Consent', { step: 1 })
  })
  await until('the first three events to reach Sluice', () =>
    posted('identify') && posted('page') && posted('Before Consent'))

  // The visitor grants C0004 in the banner.
  await page.waitForFunction(() => window.fakeCmp.listeners() > 0, null, { timeout: STEP_TIMEOUT_MS })
  await page.evaluate(() => window.fakeCmp.save(['C0001', 'C0004']))
  await until('"Segment Consent Preference Updated" to reach Sluice', () =>
    posted('Segment Consent Preference Updated'))

  // After consent.
  await page.evaluate(() => window.harness.analytics.track('After Consent', { step: 2 }))
  await until('"After Consent" to reach Sluice', () => posted('After Consent'))

  await finish(summary.problems.length ? 1 : 0)
} catch (error) {
  await fail(`driver: ${error?.stack ?? error}`)
}
