// The page's script: the real @segment/analytics-next, wrapped by the real
// @segment/analytics-consent-tools through a small adapter for the fake CMP in index.html.
// Bundled by esbuild into dist/harness.js (one IIFE; consent-tools ships no browser build).
//
// Query string: ?sluice=http://127.0.0.1:PORT&writeKey=KEY
// analytics-next then loads its settings from GET {sluice}/v1/projects/{writeKey}/settings and
// sends events wherever that document's integrations["Segment.io"] points.
import { AnalyticsBrowser } from '@segment/analytics-next'
import { createWrapper, resolveWhen } from '@segment/analytics-consent-tools'

// ---- Adapter: fake OneTrust-like CMP -> consent-tools --------------------------------------
const cmp = () => window.OneTrust
const activeGroups = (list = window.OnetrustActiveGroups ?? '') =>
  list.split(',').map((id) => id.trim()).filter((id) => id !== '')
// Every group the CMP knows, true when granted: { C0001: true, C0004: false, ... }
const preferences = (granted) =>
  Object.fromEntries(
    cmp().GetDomainData().Groups.map(({ CustomGroupId }) => [CustomGroupId, granted.includes(CustomGroupId)])
  )

const withFakeOneTrust = createWrapper({
  shouldLoadWrapper: () => resolveWhen(() => typeof cmp()?.OnConsentChanged === 'function', 50),
  shouldLoadSegment: async (ctx) => {
    const optOut = cmp().GetDomainData().ConsentModel.Name === 'opt-out'
    if (!optOut) await resolveWhen(() => cmp().IsAlertBoxClosed() && activeGroups().length > 0, 50)
    ctx.load({ consentModel: optOut ? 'opt-out' : 'opt-in' })
  },
  getCategories: () => preferences(activeGroups()),
  registerOnConsentChanged: (changed) =>
    cmp().OnConsentChanged((event) => changed(preferences(event.detail))),
})

// ---- Load analytics-next from Sluice's CDN endpoint ---------------------------------------
const query = new URLSearchParams(location.search)
const cdnURL = query.get('sluice')
const writeKey = query.get('writeKey')

const analytics = new AnalyticsBrowser()
withFakeOneTrust(analytics) // must wrap before load()
analytics.load({ writeKey, cdnURL })

window.harness = {
  analytics,
  // Resolves once analytics-next has loaded; what it ended up configured with.
  ready: analytics.then(([instance]) => {
    const segmentio = instance.queue.plugins.find((p) => p.name === 'Segment.io')
    return {
      writeKey: instance.settings.writeKey,
      cdnURL: instance.settings.cdnURL,
      segmentio: segmentio?.metadata ?? null,
      plugins: instance.queue.plugins.map((p) => p.name),
      // As consent-tools left them: device-mode destinations the visitor has not consented to
      // are removed from this copy.
      cdnSettings: instance.settings.cdnSettings,
    }
  }),
}
