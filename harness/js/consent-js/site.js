// The test site's own script, bundled by esbuild into dist/site.js (the real npm
// @segment/analytics-next; nothing from a CDN).
//
// A site using Sluice's consent.js creates analytics-next as window.analytics and does NOT call
// load(): consent.js calls it when the visitor's choice allows. Calls made before that are
// buffered by analytics-next and sent only if and when it loads.
import { AnalyticsBrowser } from '@segment/analytics-next'

const analytics = new AnalyticsBrowser()
window.analytics = analytics

// ?label=A names the page view, so the test can tell its browser contexts apart.
analytics.page(new URLSearchParams(location.search).get('label') || 'Home')

// What consent.js reported through its API (consent.js is on the page before this script).
window.site = { changes: [] }
window.sluiceConsent.onChange((preferences) => window.site.changes.push(preferences))

// The page's own "Privacy settings" button reopens the dialog.
document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('privacy').addEventListener('click', () => window.sluiceConsent.open())
})
