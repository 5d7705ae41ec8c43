/*
 * Demo analytics for The Harbour Ledger — a stand-in for a real audience-measurement tag.
 *
 * The page ships it inert (<script type="text/plain" data-consent="analytics">); it only
 * runs once the reader has allowed analytics. When it runs it does what such tags do —
 * drops an identifier cookie — and, unlike them, says so on screen.
 */
(function () {
  "use strict";
  var NAME = "demo_analytics_id";
  var existing = document.cookie.split("; ").filter(function (c) {
    return c.indexOf(NAME + "=") === 0;
  })[0];
  var id = existing ? existing.slice(NAME.length + 1) : "";
  if (!/^[0-9a-f]{32}$/.test(id)) {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    id = Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }
  // About 13 months, the longest an analytics identifier is usually allowed to live.
  document.cookie = NAME + "=" + id + "; path=/; max-age=" + 60 * 60 * 24 * 395 + "; SameSite=Lax";
  window.demoAnalyticsRan = true;

  function badge() {
    if (document.querySelector(".demo-analytics-badge")) return;
    var el = document.createElement("div");
    el.className = "demo-analytics-badge";
    el.setAttribute("role", "status");
    el.setAttribute("data-analytics-id", id);
    el.title = "demo_analytics_id=" + id;
    el.textContent = "analytics active";
    document.body.appendChild(el);
  }
  if (document.body) badge();
  else document.addEventListener("DOMContentLoaded", badge);
})();
