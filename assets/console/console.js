// Sluice console: small progressive enhancements. Every page works without this file.
(function () {
  "use strict";
  var live = document.createElement("div");
  live.className = "sr-only";
  live.setAttribute("role", "status");
  live.setAttribute("aria-live", "polite");
  document.addEventListener("DOMContentLoaded", function () {
    document.body.appendChild(live);

    // Copy buttons: <button data-copy="#element-id">.
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var source = document.querySelector(button.getAttribute("data-copy"));
        if (!source) return;
        var text = source.value !== undefined && source.tagName !== "PRE" && source.tagName !== "CODE" ? source.value : source.textContent;
        var done = function () { live.textContent = "Copied to the clipboard."; button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy"; }, 1500); };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () { live.textContent = "Copying failed; select the text and copy it."; });
        } else {
          var range = document.createRange(); range.selectNodeContents(source);
          var selection = window.getSelection(); selection.removeAllRanges(); selection.addRange(range);
          live.textContent = "Text selected; press Ctrl+C to copy.";
        }
      });
    });

    // Dialogs: <button data-open="dialog-id">; the dialog traps focus natively (showModal) and
    // focus returns to the opener on close.
    document.querySelectorAll("[data-open]").forEach(function (opener) {
      var dialog = document.getElementById(opener.getAttribute("data-open"));
      if (!dialog || typeof dialog.showModal !== "function") return;
      opener.addEventListener("click", function (event) {
        event.preventDefault();
        dialog.showModal();
        var first = dialog.querySelector("input:not([type=hidden]), button");
        if (first) first.focus();
        dialog.addEventListener("close", function () { opener.focus(); }, { once: true });
      });
    });
    document.querySelectorAll("dialog [data-close]").forEach(function (button) {
      button.addEventListener("click", function (event) { event.preventDefault(); button.closest("dialog").close(); });
    });

    // Type-to-confirm: <input data-confirm="exact text" data-confirm-button="button-id">.
    document.querySelectorAll("[data-confirm]").forEach(function (input) {
      var button = document.getElementById(input.getAttribute("data-confirm-button"));
      if (!button) return;
      var check = function () { button.disabled = input.value !== input.getAttribute("data-confirm"); };
      input.addEventListener("input", check);
      check();
    });

    // Selects that apply on change: <select data-autosubmit>.
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { if (select.form) select.form.requestSubmit(); });
    });

    // Local times: <time datetime="..." data-local>.
    document.querySelectorAll("time[data-local]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) { t.title = t.getAttribute("datetime"); t.textContent = d.toLocaleString(); }
    });
  });
})();
