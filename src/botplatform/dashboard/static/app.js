// The dashboard's own script (loaded from our origin; the CSP forbids inline code).
// Small comforts only: every page works without it.
(function () {
  "use strict";

  function nearBottom(el) {
    return el.scrollHeight - el.scrollTop - el.clientHeight < 80;
  }

  function toBottom() {
    var list = document.getElementById("messages");
    if (list) list.scrollTop = list.scrollHeight;
  }

  // Keep the thread pinned to the newest message when the reader was already there.
  var pinned = true;
  document.addEventListener("htmx:beforeSwap", function () {
    var list = document.getElementById("messages");
    pinned = !list || nearBottom(list);
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (pinned) toBottom();
  });

  // A sent reply clears the box.
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (form && form.hasAttribute && form.hasAttribute("data-reset") && event.detail.successful) {
      var text = form.querySelector("textarea");
      if (text) text.value = "";
      var note = form.querySelector("input[type=checkbox]");
      if (note) note.checked = false;
    }
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy]") : null;
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (source && navigator.clipboard) {
      navigator.clipboard.writeText(source.textContent.trim()).then(function () {
        button.textContent = "Copied";
      });
    }
  });

  // The workspace switcher goes as soon as a workspace is picked (its button stays for
  // browsers without this script).
  document.addEventListener("change", function (event) {
    var select = event.target;
    if (select.hasAttribute && select.hasAttribute("data-autosubmit") && select.value) {
      if (select.form.requestSubmit) select.form.requestSubmit(); else select.form.submit();
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  // Enter sends, Shift+Enter starts a new line.
  document.addEventListener("keydown", function (event) {
    if (event.target.id === "reply-text" && event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      var form = event.target.form;
      if (form.requestSubmit) form.requestSubmit(); else form.submit();
    }
  });


  // Live updates: the workspace's event socket (same origin; the session cookie
  // authenticates it). Each event fires `bp:changed` on <body>, which makes htmx fetch the
  // inbox fragments (they answer 204 when nothing changed). When the socket drops we
  // reconnect with growing pauses and, meanwhile, fire the same event on a slow timer.
  function startLive(root) {
    var path = root.getAttribute("data-live-socket");
    var fallbackMs = parseInt(root.getAttribute("data-live-fallback-ms"), 10) || 15000;
    var body = document.body;
    var delay = 1000;
    var poll = null;
    var pending = null;

    var inFlight = 0;
    var missed = false;

    var settle = null;

    function refresh() {
      // A request still on its way would swap its element out and lose the refresh htmx
      // queued on it (a message's "read" right after its "delivered"): go again after it.
      if (inFlight) { missed = true; return; }
      body.dispatchEvent(new CustomEvent("bp:changed"));
    }

    function changed() {
      // One more refresh a second after the last event of a burst: whatever raced with the
      // burst's refreshes (a swap landing late, a request htmx dropped), the page ends on
      // the last state. It costs a 204 when nothing changed.
      clearTimeout(settle);
      settle = setTimeout(refresh, 1000);
      if (pending) return; // several events at once: one refresh
      pending = setTimeout(function () {
        pending = null;
        refresh();
      }, 50);
    }

    // Any request counts: a reply's answer also replaces the thread, and a refresh sent
    // next to it could land first and be overwritten by the older state.
    document.addEventListener("htmx:beforeRequest", function (event) {
      inFlight++;
      // loadend fires even when the element that asked was swapped out of the page.
      event.detail.xhr.addEventListener("loadend", function () {
        inFlight = Math.max(0, inFlight - 1);
        if (!inFlight && missed) { missed = false; changed(); }
      });
    });

    function fallback(on) {
      if (on && !poll) poll = setInterval(changed, fallbackMs);
      if (!on && poll) { clearInterval(poll); poll = null; }
    }

    function connect() {
      var scheme = location.protocol === "https:" ? "wss:" : "ws:";
      var socket;
      try {
        socket = new WebSocket(scheme + "//" + location.host + path);
      } catch (error) {
        retry();
        return;
      }
      socket.addEventListener("message", function (message) {
        var event;
        try { event = JSON.parse(message.data); } catch (error) { return; }
        if (!event || typeof event.type !== "string") return;
        if (event.type === "live.subscribed") {
          body.setAttribute("data-live", "connected");
          delay = 1000;
          fallback(false);
          changed(); // catch up on anything missed while disconnected
        } else if (event.type.indexOf("live.") !== 0) {
          changed();
        }
      });
      socket.addEventListener("close", function (close) {
        body.setAttribute("data-live", "down");
        fallback(true);
        // 4401/4403/4404: not (or no longer) allowed; the slow poll shows the login page.
        if (close.code === 4401 || close.code === 4403 || close.code === 4404) return;
        retry();
      });
    }

    function retry() {
      body.setAttribute("data-live", "down");
      fallback(true);
      setTimeout(connect, delay + Math.floor(Math.random() * 500));
      delay = Math.min(delay * 2, 30000);
    }

    if (!("WebSocket" in window)) {
      fallback(true);
      return;
    }
    connect();
  }

  document.addEventListener("DOMContentLoaded", function () {
    toBottom();
    var live = document.querySelector("[data-live-socket]");
    if (live) startLive(live);
    // On a phone the menu scrolls sideways: bring the current page's entry into view.
    var current = document.querySelector(".sidenav [aria-current=page]");
    if (current && current.scrollIntoView) current.scrollIntoView({block: "nearest", inline: "center"});
  });
  // The settings page's logo: show the chosen image before it is uploaded (a data: URL,
  // which the CSP's img-src allows; nothing leaves the browser until the form is sent).
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input || !input.getAttribute || !input.getAttribute("data-preview")) return;
    var preview = document.getElementById(input.getAttribute("data-preview"));
    var file = input.files && input.files[0];
    if (!preview) return;
    if (!file || !/^image\/(png|jpeg|webp)$/.test(file.type)) {
      preview.hidden = true;
      preview.removeAttribute("src");
      return;
    }
    var reader = new FileReader();
    reader.onload = function () {
      preview.src = reader.result;
      preview.hidden = false;
    };
    reader.readAsDataURL(file);
  });
})();
