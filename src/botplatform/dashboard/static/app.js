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

  document.addEventListener("DOMContentLoaded", function () {
    toBottom();
    // On a phone the menu scrolls sideways: bring the current page's entry into view.
    var current = document.querySelector(".sidenav [aria-current=page]");
    if (current && current.scrollIntoView) current.scrollIntoView({block: "nearest", inline: "center"});
  });
})();
