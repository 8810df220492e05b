// Drive the Sluice web console in headless Debian Chromium (playwright-core) the way a privacy
// person would, run axe-core on every page, and take the README's screenshots. Prints one JSON
// summary on stdout; exits non-zero on the first failed step, a page error, a console error (CSP
// violations show up there), or a timeout.
//
// Usage: node console/drive.mjs CONFIG_JSON
//   CONFIG_JSON: {"url", "owner": {"email","password"}, "viewer": {...}, "destinationName",
//                 "sourceId", "writeKey", "token", "screenshots": dir or null}
import { chromium } from 'playwright-core'
import { readFileSync, mkdirSync } from 'node:fs'
import { execFile } from 'node:child_process'
import { createRequire } from 'node:module'

const config = JSON.parse(process.argv[2] || '{}')
const require = createRequire(import.meta.url)
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8')
const TOTAL_TIMEOUT_MS = 150_000
const started = Date.now()
const summary = { steps: [], axe: {}, problems: [], console: [], debuggerMs: null, overview: null, ms: 0 }
let browser

async function finish(code) {
  summary.ms = Date.now() - started
  process.stdout.write(JSON.stringify(summary) + '\n')
  await browser?.close().catch(() => {})
  process.exit(code)
}
setTimeout(() => { summary.problems.push(`timed out after ${TOTAL_TIMEOUT_MS} ms`); finish(1) }, TOTAL_TIMEOUT_MS).unref()

function check(condition, message) {
  if (!condition) throw new Error(message)
}
async function step(name, body) {
  const t = Date.now()
  await body()
  summary.steps.push({ name, ms: Date.now() - t })
}

// Every page of a context reports errors into the summary.
function watch(page, who) {
  page.on('pageerror', (e) => summary.problems.push(`${who}: page error on ${page.url()}: ${e.message}`))
  page.on('console', (m) => {
    // Form pages answered 400/401 on purpose (validation errors, a wrong password) are not errors.
    if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of 40[01]/.test(m.text())) summary.console.push(`${who}: ${page.url()}: ${m.text()}`)
  })
}

async function login(page, who) {
  await page.goto(`${config.url}/consent`)
  check(page.url().includes('/login'), `signed-out visit to /consent did not land on /login but ${page.url()}`)
  await page.getByLabel('Email').fill(who.email)
  await page.getByLabel('Password').fill(who.password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.waitForURL(`${config.url}/consent`)
}

// axe-core on the current page; serious and critical violations fail the run.
async function axe(page, name) {
  await page.evaluate(AXE)
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] })
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }))
  })
  summary.axe[name] = result
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical')
  check(bad.length === 0, `axe found serious/critical issues on ${name}: ${JSON.stringify(bad)}`)
}

async function shot(page, name) {
  if (!config.screenshots) return
  mkdirSync(config.screenshots, { recursive: true })
  await page.screenshot({ path: `${config.screenshots}/${name}.png`, fullPage: true })
}

function curl(args) {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', ...args], (error, stdout) => (error ? reject(error) : resolve(stdout)))
  })
}

async function api(path) {
  const response = await fetch(`${config.url}${path}`, { headers: { authorization: `Bearer ${config.token}` } })
  check(response.ok, `GET ${path} answered ${response.status}`)
  return response.json()
}

try {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  })
  const ownerContext = await browser.newContext({ viewport: { width: 1280, height: 860 } })
  const owner = await ownerContext.newPage()
  watch(owner, 'owner')

  await step('owner signs in', async () => {
    await owner.goto(`${config.url}/login`)
    await axe(owner, 'login')
    await shot(owner, 'login')
    await login(owner, config.owner)
  })

  await step('owner creates a category through the prerequisites step and sees a bad id refused', async () => {
    await owner.getByRole('link', { name: 'Create category' }).click()
    await owner.waitForURL(/\/consent\/new/)
    // Continuing without confirming the prerequisites is refused with a message.
    await owner.getByRole('button', { name: 'Continue' }).click()
    check(await owner.getByText('Confirm both points to continue.').isVisible(), 'no prerequisites message')
    await axe(owner, 'consent-new-prerequisites')
    await owner.getByLabel(/noted the category ids/).check()
    await owner.getByLabel(/which destinations belong/).check()
    await owner.getByRole('button', { name: 'Continue' }).click()
    await owner.getByLabel('Category name').fill('Advertising')
    await owner.getByLabel('Category id').fill('4ads')
    await owner.getByLabel(config.destinationName, { exact: false }).check()
    await owner.getByRole('button', { name: 'Create category' }).click()
    const idInput = owner.getByLabel('Category id')
    check((await idInput.getAttribute('aria-invalid')) === 'true', 'the bad id is not marked invalid')
    const error = await owner.locator('#id-error').textContent()
    check(/must not start with a digit/.test(error), `unexpected id error: ${error}`)
    check(await owner.getByLabel(config.destinationName, { exact: false }).isChecked(), 'the destination choice was lost')
    await axe(owner, 'consent-form-with-errors')
    await idInput.fill('C0004')
    await owner.getByRole('button', { name: 'Create category' }).click()
    await owner.waitForURL(/\/consent\?ok=/)
    const row = owner.locator('#category-C0004')
    check((await row.textContent()).includes(config.destinationName), 'the new category does not show its destination')
  })

  await step('owner disables the category by typing its name', async () => {
    const row = owner.locator('#category-C0004')
    await row.getByRole('button', { name: /Disable/ }).click()
    const dialog = owner.getByRole('dialog', { name: 'Disable Advertising?' })
    check(await dialog.isVisible(), 'the disable dialog did not open')
    const confirm = dialog.getByRole('button', { name: 'Disable category' })
    check(await confirm.isDisabled(), 'the disable button is usable before the name is typed')
    const focused = await owner.evaluate(() => document.activeElement?.getAttribute('name'))
    check(focused === 'confirm_name', `focus is not in the dialog's name field but on ${focused}`)
    await axe(owner, 'consent-disable-dialog')
    await dialog.getByLabel('Consent category name').fill('Advertisin')
    check(await confirm.isDisabled(), 'a wrong name enabled the button')
    await dialog.getByLabel('Consent category name').fill('Advertising')
    await confirm.click()
    await owner.waitForURL(/\/consent\?ok=/)
    check((await owner.locator('#category-C0004').textContent()).includes('Disabled'), 'the category is not shown disabled')
    await owner.locator('#category-C0004').getByRole('button', { name: /Enable/ }).click()
    await owner.waitForURL(/\/consent\?ok=/)
  })

  await step('owner finds each step in the audit trail page', async () => {
    await owner.goto(`${config.url}/audit`)
    const text = await owner.locator('main').textContent()
    for (const action of ['category.created', 'category.disabled', 'category.enabled']) {
      check(text.includes(action), `the audit trail page does not show ${action}`)
    }
    check(/category\.mapping|mapping/i.test(text), 'the audit trail page does not show the destination mapping')
  })

  await step('the debugger shows an event sent with curl within a second', async () => {
    await owner.goto(`${config.url}/debugger?source=${config.sourceId}`)
    await owner.waitForFunction(() => document.querySelector('[data-debugger-state]')?.getAttribute('data-debugger-state') === 'live', null, { timeout: 10_000 })
    const messageId = `console-debug-${Date.now()}`
    const sent = Date.now()
    const status = await curl(['-u', `${config.writeKey}:`, '-H', 'content-type: application/json', `${config.url}/v1/track`, '-d',
      JSON.stringify({ userId: 'debug-user', event: 'Debugger Check', messageId, context: { consent: { categoryPreferences: { C0004: false } } } })])
    check(status === '200', `curl got ${status}`)
    const item = owner.locator(`[data-message-id="${messageId}"]`)
    await item.waitFor({ timeout: 5_000 })
    summary.debuggerMs = Date.now() - sent
    check(summary.debuggerMs < 1000, `the event took ${summary.debuggerMs} ms to show`)
    const text = await item.textContent()
    check(text.includes(config.destinationName), 'the event does not show the decision for the destination')
    check(text.includes('FILTERED_BY_END_USER_CONSENT'), 'the refused consent does not show as a decision')
    await shot(owner, 'debugger-live')
  })

  await step('the delivery overview page matches the API', async () => {
    await owner.goto(`${config.url}/overview?range=24h`)
    const cells = await owner.locator('[data-destination][data-step]').evaluateAll((nodes) =>
      nodes.map((n) => ({ destination: n.getAttribute('data-destination'), step: n.getAttribute('data-step'), reason: n.getAttribute('data-reason') ?? n.getAttribute('data-code'), value: n.getAttribute('data-value') ?? n.textContent.trim() })))
    check(cells.length > 0, 'the overview page shows no numbers')
    const range = await owner.locator('#overview-range').evaluate((n) => {
      const [from, to] = [...n.querySelectorAll('time')].map((t) => t.getAttribute('datetime'))
      return { from, to }
    })
    summary.overview = { cells, range }
  })

  // Every page: axe and a screenshot.
  const pages = [
    ['consent', '/consent'],
    ['consent-new', '/consent/new?step=form&cmp=1&mapping=1'],
    ['consent-edit', '/consent/C0004/edit'],
    ['sources', '/sources'],
    ['source', `/sources/${config.sourceId}`],
    ['destinations', '/destinations'],
    ['destination', `/destinations/${config.destinationId}`],
    ['destination-new', '/destinations/new?type=webhook'],
    ['overview', '/overview'],
    ['debugger', `/debugger?source=${config.sourceId}`],
    ['profiles', '/profiles'],
    ['profile', `/profiles?id=${encodeURIComponent(config.profileId)}`],
    ['regulations', '/regulations'],
    ['audit', '/audit'],
    ['retl', '/retl'],
    ['retl-connection', `/retl/connections/${config.retlConnectionId}`],
    ['retl-model', `/retl/models/${config.retlModelId}`],
    ['users', '/users'],
    ['user', `/users/${config.ownerId}`],
  ]
  await step('axe-core on every page, and screenshots', async () => {
    for (const [name, path] of pages) {
      const response = await owner.goto(`${config.url}${path}`)
      check(response.status() === 200, `${path} answered ${response.status()}`)
      await owner.waitForLoadState('networkidle').catch(() => {})
      await axe(owner, name)
      await shot(owner, name)
    }
  })

  await step('a viewer sees everything read-only and cannot change anything', async () => {
    const viewerContext = await browser.newContext()
    const viewer = await viewerContext.newPage()
    watch(viewer, 'viewer')
    await login(viewer, config.viewer)
    const create = viewer.getByRole('button', { name: 'Create category' })
    check(await create.isDisabled(), 'the viewer can use Create category')
    check(await viewer.getByText('Only owners can change consent categories').first().isVisible(), 'no reason is shown to the viewer')
    await axe(viewer, 'consent-as-viewer')
    const csrf = await viewer.locator('input[name=_csrf]').first().inputValue()
    // A forged POST with the viewer's own session and CSRF token: refused by role.
    const forged = await viewer.request.post(`${config.url}/consent/new`, { form: { _csrf: csrf, id: 'Forged', name: 'Forged' }, maxRedirects: 0 })
    check(forged.status() === 403, `the viewer's forged create answered ${forged.status()}`)
    const disable = await viewer.request.post(`${config.url}/consent/C0004/disable`, { form: { _csrf: csrf, confirm_name: 'Advertising' }, maxRedirects: 0 })
    check(disable.status() === 403, `the viewer's forged disable answered ${disable.status()}`)
    // The owner's session without the CSRF token: refused too.
    const noToken = await owner.request.post(`${config.url}/consent/new`, { form: { id: 'NoCsrf', name: 'No Csrf' }, maxRedirects: 0 })
    check(noToken.status() === 403, `a POST without the CSRF token answered ${noToken.status()}`)
    await viewerContext.close()
  })

  await step('sign out ends the session', async () => {
    await owner.goto(`${config.url}/consent`)
    await owner.getByRole('button', { name: 'Sign out' }).click()
    await owner.waitForURL(/\/login/)
    await owner.goto(`${config.url}/consent`)
    check(owner.url().includes('/login'), 'the console is still reachable after signing out')
  })

  check(summary.problems.length === 0, summary.problems.join('; '))
  check(summary.console.length === 0, `console errors: ${summary.console.join('; ')}`)
  await finish(0)
} catch (error) {
  summary.problems.push(`${summary.steps.length} steps passed; then: ${error.message}`)
  await finish(1)
}
