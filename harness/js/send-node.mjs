// Send events to Sluice with the real @segment/analytics-node SDK.
// Usage: node send-node.mjs HOST WRITE_KEY RUN_ID
// Batches (flushAt 3) and a final single flush; consent objects on each event.
import { Analytics } from '@segment/analytics-node'

const [host, writeKey, run] = process.argv.slice(2)
const errors = []
const analytics = new Analytics({ writeKey, host, flushAt: 3, flushInterval: 300, maxRetries: 2 })
analytics.on('error', (e) => errors.push(String(e?.reason ?? e)))

const granted = { consent: { categoryPreferences: { C0001: true, C0004: true } } }
const denied = { consent: { categoryPreferences: { C0001: true, C0004: false } } }

analytics.identify({ userId: `${run}-user`, traits: { email: 'node@example.com' }, context: granted })
analytics.track({ anonymousId: `${run}-anon`, event: `${run} node granted`, properties: { revenue: 9.5 }, context: granted })
analytics.track({ anonymousId: `${run}-anon`, event: `${run} node denied`, context: denied })
analytics.page({ userId: `${run}-user`, name: 'Home', properties: { url: 'http://x/' }, context: denied })
analytics.track({ userId: `${run}-user`, event: `${run} node no consent` })
await analytics.closeAndFlush({ timeout: 10000 })
console.log(JSON.stringify({ errors }))
process.exit(errors.length ? 1 : 0)
