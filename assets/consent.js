/*! Sluice consent.js: a consent banner for sites without a consent-management platform.
 *
 * <script src="https://events.example.com/consent.js" data-write-key="WRITE_KEY"
 *         data-cookie-domain=".example.com"></script>     (data-cookie-domain is optional)
 *
 * The page creates analytics-next as window.analytics (new AnalyticsBrowser()) and does NOT call
 * load(): this script calls analytics.load() once the visitor's choice allows it, stamps
 * context.consent.categoryPreferences on every event, and tracks "Segment Consent Preference
 * Updated" on each change of the choice. The choice is kept in the `tracking-preferences` cookie
 * as URL-encoded {"version":1,"destinations":{},"custom":{<categoryId>:bool}} for 365 days.
 * API: window.sluiceConsent.get(), .set(prefs), .open(), .onChange(cb), .categories(), .ready
 */
(function () {
  'use strict'
  if (window.sluiceConsent) return

  var COOKIE = 'tracking-preferences'
  var UPDATED = 'Segment Consent Preference Updated'
  var YEAR = 365 * 24 * 3600
  var TAG = 'Sluice consent.js: '
  var own = Object.prototype.hasOwnProperty

  var script =
    document.currentScript || document.querySelector('script[data-write-key][src*="/consent.js"]')
  var data = (script && script.dataset) || {}
  var writeKey = data.writeKey
  // Where Sluice is: this script's URL without "/consent.js" (a path prefix is kept).
  var base = script ? script.src.replace(/\/consent\.js(?:[?#].*)?$/, '') : ''
  var cookieDomain = data.cookieDomain

  var config = null // GET {base}/v1/projects/{writeKey}/consent
  var choice = null // {categoryId: boolean} once the visitor has chosen (now or on an earlier visit)
  var listeners = []
  var loading = false // analytics.load() called, or analytics-next found already loaded
  var ajs = null // the initialised analytics-next instance
  var updates = [] // consent updates waiting for analytics-next to initialise, oldest first
  var cookies = cookiesWork()
  var ui = null

  var resolveReady
  var ready = new Promise(function (resolve) {
    resolveReady = resolve
  })

  // ---- Cookie -----------------------------------------------------------------------------
  function cookiesWork() {
    try {
      document.cookie = 'sluice_cookie_check=1; Path=/; SameSite=Lax'
      var ok = /(?:^|;\s*)sluice_cookie_check=1/.test(document.cookie)
      document.cookie = 'sluice_cookie_check=; Path=/; Max-Age=0; SameSite=Lax'
      return ok
    } catch (e) {
      return false
    }
  }

  // The stored `custom` object, or null. Accepts raw, js-cookie-style and URL-encoded JSON.
  function readCookie() {
    var parts = document.cookie ? document.cookie.split(';') : []
    for (var i = 0; i < parts.length; i++) {
      var part = parts[i].trim()
      var eq = part.indexOf('=')
      if (part.slice(0, eq) !== COOKIE) continue
      try {
        var value = JSON.parse(decodeURIComponent(part.slice(eq + 1)))
        if (value && value.custom && typeof value.custom === 'object') return value.custom
      } catch (e) {
        // Unreadable: as if there were no choice.
      }
    }
    return null
  }

  function writeCookie(custom) {
    var json = JSON.stringify({ version: 1, destinations: {}, custom: custom })
    var cookie =
      COOKIE + '=' + encodeURIComponent(json) + '; Path=/; Max-Age=' + YEAR +
      '; Expires=' + new Date(Date.now() + YEAR * 1000).toUTCString() + '; SameSite=Lax'
    if (cookieDomain) cookie += '; Domain=' + cookieDomain
    if (location.protocol === 'https:') cookie += '; Secure'
    document.cookie = cookie
    if (JSON.stringify(readCookie()) !== JSON.stringify(custom)) {
      console.warn(
        TAG + 'the choice could not be stored in the ' + COOKIE + ' cookie' +
          (cookieDomain ? ' (does data-cookie-domain="' + cookieDomain + '" match this site?)' : '')
      )
    }
  }

  // ---- Consent state ----------------------------------------------------------------------
  // The preferences to stamp: every enabled category, false unless chosen (default reject).
  function prefs() {
    var out = {}
    config.categories.forEach(function (c) {
      out[c.id] = !!choice && choice[c.id] === true
    })
    return out
  }

  // Whether events may be sent now. Before a choice: only when some destination needs no
  // consent and the workspace delivers events without a choice (missing-consent policy allow).
  // After: when a granted category is mapped to a destination, or some destination needs none.
  function allowed() {
    if (!choice) return config.hasUnmappedDestinations && config.missingConsentPolicy === 'allow'
    return (
      config.hasUnmappedDestinations ||
      config.categories.some(function (c) {
        return c.mapped && choice[c.id] === true
      })
    )
  }

  function commit(next) {
    var before = choice
    var changed = !before
    choice = {}
    config.categories.forEach(function (c) {
      choice[c.id] = next[c.id] === true
      if (before && (before[c.id] === true) !== choice[c.id]) changed = true
    })
    if (cookies) writeCookie(choice)
    hide()
    if (!changed) return
    // The consent update goes out when analytics-next runs or may now run; after a first
    // "Reject all" where nothing may be sent, nothing is.
    if (loading || allowed()) {
      send(prefs())
      load()
    }
    listeners.slice().forEach(function (callback) {
      try {
        callback(prefs())
      } catch (e) {
        setTimeout(function () {
          throw e
        })
      }
    })
  }

  // ---- analytics-next ---------------------------------------------------------------------
  function send(preferences) {
    if (ajs) ajs.track(UPDATED, {}, { consent: { categoryPreferences: preferences } })
    else updates.push(preferences)
  }

  // Source middleware: stamp the current choice on every event; drop events the choice does
  // not allow (not calling next() drops), except the consent update itself.
  function sluiceConsent(m) {
    var event = m.payload.obj
    var update = event.type === 'track' && event.event === UPDATED
    if (!update && !allowed()) return
    var context = event.context || (event.context = {})
    var consent = Object.assign({}, context.consent)
    if (!(update && consent.categoryPreferences)) consent.categoryPreferences = prefs()
    context.consent = consent
    m.next(m.payload)
  }

  function load() {
    if (loading) return
    loading = true
    withAnalytics(function (analytics) {
      analytics.addSourceMiddleware(sluiceConsent)
      // Its load() runs when analytics-next initialises, before the calls the page made
      // earlier are replayed: the consent update is the first event sent.
      analytics.register({
        name: 'Sluice consent',
        type: 'utility',
        version: '1.0.0',
        isLoaded: function () {
          return true
        },
        load: function (ctx, instance) {
          ajs = instance
          updates.splice(0).forEach(send)
          return Promise.resolve()
        },
      })
      if (analytics.instance) {
        console.warn(TAG + 'analytics.js was loaded by the page; leave analytics.load() to consent.js')
        return
      }
      analytics.load(
        { writeKey: writeKey, cdnURL: base },
        { integrations: { 'Segment.io': { apiHost: config.apiHost, protocol: config.protocol } } }
      )
    })
  }

  function withAnalytics(callback, tries) {
    var analytics = window.analytics
    if (Array.isArray(analytics)) {
      console.error(
        TAG + 'window.analytics is the Segment snippet, which loads analytics.js from Segment; ' +
          'create it with new AnalyticsBrowser() from @segment/analytics-next and do not call load()'
      )
    } else if (analytics && typeof analytics.load === 'function' && analytics.addSourceMiddleware) {
      callback(analytics)
    } else if ((tries || 0) < 100) {
      setTimeout(function () {
        withAnalytics(callback, (tries || 0) + 1)
      }, 100)
    } else {
      console.error(TAG + 'no window.analytics (new AnalyticsBrowser(), not loaded) after 10 s')
    }
  }

  // ---- Banner and preferences dialog ------------------------------------------------------
  var CSS =
    ':host{all:initial}' +
    '.b,dialog{box-sizing:border-box;font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;' +
    'color:#1a1a1a;background:#fff;border:1px solid #6b6b6b;border-radius:8px}' +
    '.b{position:fixed;z-index:2147483646;left:16px;right:16px;bottom:16px;max-width:46rem;' +
    'margin:0 auto;padding:16px 20px;box-shadow:0 4px 24px rgba(0,0,0,.25)}' +
    'dialog{width:calc(100% - 32px);max-width:32rem;padding:20px}' +
    'dialog::backdrop{background:rgba(0,0,0,.45)}' +
    'h2{font-size:17px;margin:0 0 6px}p{margin:0 0 12px}' +
    'fieldset{border:0;margin:0 0 12px;padding:0}' +
    'label{display:flex;gap:10px;align-items:center;padding:6px 0;cursor:pointer}' +
    'input{width:18px;height:18px;margin:0}' +
    '.a{display:flex;flex-wrap:wrap;gap:8px;justify-content:flex-end}' +
    'button{font:inherit;padding:8px 16px;border:1px solid #1a1a1a;border-radius:6px;' +
    'background:#1a1a1a;color:#fff;cursor:pointer}' +
    'button.s{background:#fff;color:#1a1a1a}' +
    '.x{position:absolute;top:8px;right:8px;padding:2px 10px;background:#fff;color:#1a1a1a;border:0}' +
    'button:focus-visible,input:focus-visible{outline:3px solid #1a5fd0;outline-offset:2px}' +
    '.v{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}' +
    '[hidden]{display:none!important}'

  // Texts can be replaced with data-text-* attributes on the script tag (e.g. to translate).
  function text(key, fallback) {
    return data['text' + key] || fallback
  }

  function el(tag, attributes, content) {
    var node = document.createElement(tag)
    for (var name in attributes) node.setAttribute(name, attributes[name])
    if (content != null) node.textContent = content
    return node
  }

  var LABELS = {
    accept: ['Accept', 'Accept all'],
    reject: ['Reject', 'Reject all'],
    choose: ['Choose', 'Choose…'],
    save: ['Save', 'Save choices'],
  }

  function buttons(actions, extraClass) {
    var row = el('div', { class: 'a' })
    actions.forEach(function (action) {
      var label = LABELS[action]
      var attributes = { type: 'button', 'data-a': action }
      if (extraClass[action]) attributes.class = 's'
      row.append(el('button', attributes, text(label[0], label[1])))
    })
    return row
  }

  function build() {
    if (ui) return ui
    var host = el('div', { id: 'sluice-consent' })
    var root = host.attachShadow({ mode: 'open' })
    var names = config.categories.map(function (c) {
      return c.name
    })
    var banner = el('section', { class: 'b', role: 'region', 'aria-labelledby': 'bt', hidden: '' })
    banner.append(
      el('h2', { id: 'bt' }, text('Title', 'Privacy choices')),
      el(
        'p',
        {},
        text('Banner', 'With your consent, this site uses cookies and similar technologies for: ') +
          names.join(', ') + '.'
      ),
      buttons(['reject', 'choose', 'accept'], { choose: true })
    )
    var dialog = el('dialog', { 'aria-labelledby': 'dt', 'aria-describedby': 'dd' })
    var fieldset = el('fieldset')
    fieldset.append(el('legend', { class: 'v' }, text('Categories', 'Categories')))
    config.categories.forEach(function (c) {
      var label = el('label')
      label.append(el('input', { type: 'checkbox', value: c.id }), document.createTextNode(c.name))
      fieldset.append(label)
    })
    dialog.append(
      el('h2', { id: 'dt' }, text('DialogTitle', 'Privacy preferences')),
      el('p', { id: 'dd' }, text('Dialog', 'Choose what this site may use. Everything is off unless you turn it on.')),
      fieldset,
      buttons(['reject', 'accept', 'save'], { reject: true, accept: true }),
      el('button', { type: 'button', class: 'x', 'data-a': 'close', 'aria-label': text('Close', 'Close') }, '×')
    )
    // A constructed stylesheet is not subject to the page's Content-Security-Policy style-src
    // (an inline <style> is, without 'unsafe-inline'); <style> for browsers without one.
    try {
      var sheet = new CSSStyleSheet()
      sheet.replaceSync(CSS)
      root.adoptedStyleSheets = [sheet]
    } catch (e) {
      root.append(el('style', {}, CSS))
    }
    root.append(banner, dialog)
    root.addEventListener('click', function (event) {
      var button = event.target.closest && event.target.closest('button[data-a]')
      if (button) act(button.getAttribute('data-a'))
    })
    dialog.addEventListener('close', function () {
      var back = ui.opener
      ui.opener = null
      if (back && back.isConnected && !back.closest('[hidden]')) back.focus()
    })
    document.body.prepend(host) // first in the tab order
    ui = { root: root, banner: banner, dialog: dialog, boxes: fieldset.querySelectorAll('input') }
    return ui
  }

  function all(value) {
    var out = {}
    config.categories.forEach(function (c) {
      out[c.id] = value
    })
    return out
  }

  function act(action) {
    if (action === 'choose') return openDialog()
    if (action === 'close') return ui.dialog.close()
    var next = action === 'accept' ? all(true) : all(false)
    if (action === 'save') {
      ui.boxes.forEach(function (box) {
        next[box.value] = box.checked
      })
    }
    commit(next)
  }

  function whenBody(callback) {
    if (document.body) callback()
    else document.addEventListener('DOMContentLoaded', callback)
  }

  function show() {
    whenBody(function () {
      build().banner.hidden = false
    })
  }

  function hide() {
    if (!ui) return
    ui.banner.hidden = true
    if (ui.dialog.open) ui.dialog.close()
  }

  function openDialog() {
    var u = build()
    if (u.dialog.open) return
    var current = prefs()
    u.boxes.forEach(function (box) {
      box.checked = current[box.value]
    })
    u.opener = u.root.activeElement || document.activeElement
    u.dialog.showModal()
    ;(u.boxes[0] || u.dialog.querySelector('button')).focus()
  }

  // ---- Start ------------------------------------------------------------------------------
  function start(doc) {
    config = doc
    var stored = cookies ? readCookie() : null
    var complete = true
    if (stored) {
      choice = {}
      config.categories.forEach(function (c) {
        if (typeof stored[c.id] !== 'boolean') complete = false
        choice[c.id] = stored[c.id] === true
      })
    }
    if (allowed()) load()
    // A category added since the visitor chose is asked about (the earlier choice stands).
    if (config.categories.length && (!choice || !complete)) show()
    resolveReady()
  }

  var api = (window.sluiceConsent = {
    ready: ready,
    // The current choice ({categoryId: boolean}), or null before the visitor has chosen.
    get: function () {
      return config && choice ? prefs() : null
    },
    // Record a choice; categories left out keep their current value (false before a choice).
    set: function (preferences) {
      return ready.then(function () {
        if (!config) return null
        var next = prefs()
        for (var id in preferences) if (own.call(next, id)) next[id] = preferences[id] === true
        commit(next)
        return api.get()
      })
    },
    open: function () {
      return ready.then(function () {
        if (config) whenBody(openDialog)
      })
    },
    // Called with the new choice on each change (not on page load); returns an unsubscribe.
    onChange: function (callback) {
      listeners.push(callback)
      return function () {
        var i = listeners.indexOf(callback)
        if (i >= 0) listeners.splice(i, 1)
      }
    },
    categories: function () {
      return config
        ? config.categories.map(function (c) {
            return { id: c.id, name: c.name }
          })
        : []
    },
  })

  if (!script || !writeKey) {
    console.error(TAG + 'add data-write-key="<your write key>" to the consent.js script tag')
    resolveReady()
    return
  }
  fetch(base + '/v1/projects/' + encodeURIComponent(writeKey) + '/consent', { credentials: 'omit' })
    .then(function (response) {
      if (!response.ok) throw new Error('HTTP ' + response.status)
      return response.json()
    })
    .then(start)
    .catch(function (error) {
      console.error(TAG + 'no consent settings from ' + base + ' (' + error.message + '); nothing is sent')
      resolveReady()
    })
})()
