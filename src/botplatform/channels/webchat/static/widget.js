/* The website chat widget. Plain JavaScript, no framework, no dependency; it lives in a
   Shadow DOM so the host page's CSS cannot reach it and its CSS cannot leak out. Its
   styles are a constructed stylesheet and its DOM is built with createElement/textContent:
   nothing inline is asked of the host page's Content-Security-Policy, and nothing a visitor
   or an agent writes is ever parsed as HTML. */
(function () {
  "use strict";
  var CONFIG = /*@CONFIG@*/null;
  if (!CONFIG || window["__bpchat_" + CONFIG.channel]) return;
  window["__bpchat_" + CONFIG.channel] = true;

  // The address the script came from (a custom domain, a proxy) over the configured one.
  var script = document.currentScript;
  var BASE = script && script.src ? new URL(script.src).origin : CONFIG.base;
  var API = BASE + "/widget/" + CONFIG.channel;
  var STORE = "bpchat:" + CONFIG.channel;
  var STRINGS = {
    en: {
      open: "Open chat", close: "Close chat", title: "Chat with us", send: "Send",
      message: "Write a message", attach: "Attach a file", typing: "Typing…", seen: "Seen",
      away: "We're away right now.", replyIn: "We usually reply in about {n}.",
      hours: "{n} h", minutes: "{n} min", unread: "{n} unread messages", name: "Your name",
      email: "Your email (for a reply while you are away)", start: "Start the chat",
      failed: "Not sent. Tap to retry.", tooBig: "This file is too large.",
      offline: "Reconnecting…", choose: "Choose", you: "You", them: "Support"
    },
    fr: {
      open: "Ouvrir la discussion", close: "Fermer la discussion", title: "Discutons",
      send: "Envoyer", message: "Écrivez un message", attach: "Joindre un fichier",
      typing: "En train d'écrire…", seen: "Vu", away: "Nous sommes absents pour le moment.",
      replyIn: "Nous répondons en général dans {n} environ.", hours: "{n} h",
      minutes: "{n} min", unread: "{n} messages non lus", name: "Votre nom",
      email: "Votre e-mail (pour une réponse en votre absence)",
      start: "Commencer la discussion", failed: "Non envoyé. Touchez pour réessayer.",
      tooBig: "Ce fichier est trop volumineux.", offline: "Reconnexion…", choose: "Choisir",
      you: "Vous", them: "Support"
    }
  };
  var lang = String((navigator.languages && navigator.languages[0]) || navigator.language || "en")
    .slice(0, 2).toLowerCase();
  var T = STRINGS[lang] || STRINGS.en;
  function t(key, n) { return T[key].replace("{n}", n); }

  var CSS = [
    ":host{all:initial}",
    "*{box-sizing:border-box;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}",
    ".launcher{position:fixed;right:20px;bottom:20px;width:56px;height:56px;border-radius:50%;",
    "border:0;background:var(--bp-color);color:#fff;cursor:pointer;z-index:2147483000;",
    "box-shadow:0 4px 14px rgba(0,0,0,.25);display:flex;align-items:center;justify-content:center}",
    ".launcher:focus-visible,button:focus-visible,textarea:focus-visible,input:focus-visible",
    "{outline:3px solid #1a5fb4;outline-offset:2px}",
    ".badge{position:absolute;top:-4px;right:-4px;min-width:22px;height:22px;border-radius:11px;",
    "background:#c01c28;color:#fff;font-size:13px;line-height:22px;padding:0 6px}",
    ".panel{position:fixed;right:20px;bottom:88px;width:370px;height:560px;max-height:calc(100vh - 110px);",
    "background:#fff;color:#1a1a1a;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.25);",
    "display:flex;flex-direction:column;overflow:hidden;z-index:2147483000}",
    ".panel[hidden]{display:none}",
    "header{background:var(--bp-color);color:#fff;padding:12px 14px;display:flex;gap:10px;align-items:center}",
    "header img{width:32px;height:32px;border-radius:6px;background:#fff;object-fit:contain}",
    "header h2{flex:1;margin:0;font-size:16px;font-weight:600}",
    "header button{background:transparent;border:0;color:#fff;font-size:22px;cursor:pointer;width:36px;height:36px}",
    ".notice{background:#fff4d6;color:#4a3800;font-size:13px;padding:8px 14px}",
    ".notice[hidden]{display:none}",
    ".log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;background:#f6f7f9}",
    ".msg{max-width:80%;padding:8px 11px;border-radius:12px;white-space:pre-wrap;word-wrap:break-word;",
    "font-size:14px;line-height:1.4}",
    ".in{align-self:flex-end;background:var(--bp-color);color:#fff;border-bottom-right-radius:3px}",
    ".out{align-self:flex-start;background:#fff;color:#1a1a1a;border:1px solid #dde1e6;border-bottom-left-radius:3px}",
    ".msg img{display:block;max-width:100%;border-radius:8px;margin-bottom:4px}",
    ".msg a{color:inherit}",
    ".meta{font-size:11px;color:#5e6673;align-self:flex-end}",
    ".failed{cursor:pointer;opacity:.7}",
    ".choices{display:flex;flex-wrap:wrap;gap:6px;align-self:flex-start}",
    ".choices button{border:1px solid var(--bp-color);color:var(--bp-color);background:#fff;",
    "border-radius:16px;padding:6px 12px;font-size:13px;cursor:pointer}",
    ".choices button:hover{background:#eef}",
    ".row-desc{display:block;font-size:11px;color:#5e6673}",
    ".typing{font-size:12px;color:#5e6673;padding:0 14px 6px;background:#f6f7f9}",
    ".typing[hidden]{display:none}",
    "form{display:flex;gap:6px;padding:8px;border-top:1px solid #dde1e6;align-items:flex-end}",
    "form[hidden]{display:none}",
    "textarea{flex:1;resize:none;border:1px solid #c4c9d0;border-radius:8px;padding:8px;font-size:14px;",
    "max-height:120px;color:#1a1a1a;background:#fff}",
    ".icon{border:0;background:transparent;font-size:20px;cursor:pointer;width:38px;height:38px;color:#3d4450}",
    ".send{border:0;background:var(--bp-color);color:#fff;border-radius:8px;padding:0 14px;height:38px;cursor:pointer;font-size:14px}",
    ".prechat{display:flex;flex-direction:column;gap:8px;padding:12px;border-top:1px solid #dde1e6}",
    ".prechat input{border:1px solid #c4c9d0;border-radius:8px;padding:8px;font-size:14px}",
    ".prechat label{font-size:13px;color:#3d4450;display:flex;flex-direction:column;gap:4px}",
    ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}",
    "@media (max-width:480px){.panel{right:0;bottom:0;width:100vw;height:100%;max-height:100%;border-radius:0}",
    ".launcher{right:14px;bottom:14px}.launcher[aria-expanded=true]{display:none}}"
  ].join("");

  // Icons as SVG paths (no emoji font is needed, nothing is parsed from markup).
  var ICONS = {
    chat: "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z",
    clip: "M16.5 6.5l-7.8 7.8a2 2 0 1 0 2.8 2.8l7.8-7.8a4 4 0 0 0-5.7-5.7L5.8 11.4a6 6 0 0 0 8.5 8.5l6.4-6.4"
  };
  function icon(name, filled) {
    var ns = "http://www.w3.org/2000/svg", svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24"); svg.setAttribute("width", "24"); svg.setAttribute("height", "24");
    svg.setAttribute("aria-hidden", "true"); svg.setAttribute("focusable", "false");
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", ICONS[name]);
    path.setAttribute("fill", filled ? "currentColor" : "none");
    path.setAttribute("stroke", "currentColor"); path.setAttribute("stroke-width", "2");
    path.setAttribute("stroke-linecap", "round"); path.setAttribute("stroke-linejoin", "round");
    svg.appendChild(path);
    return svg;
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var name in attrs || {}) node.setAttribute(name, attrs[name]);
    if (text != null) node.textContent = String(text);
    return node;
  }

  // --- state ------------------------------------------------------------------------------
  var saved = {};
  try { saved = JSON.parse(localStorage.getItem(STORE) || "{}") || {}; } catch (e) { saved = {}; }
  var state = {
    token: saved.token || null, open: false, unread: 0, cursor: null, widget: null,
    messages: {}, order: [], seenUpto: null, socket: null, socketFails: 0, polling: false
  };
  function persist() {
    try { localStorage.setItem(STORE, JSON.stringify({ token: state.token, prechat: saved.prechat })); }
    catch (e) { /* private mode: the conversation lasts this page */ }
  }
  function newId() {
    var bytes = new Uint8Array(16);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  // --- HTTP -------------------------------------------------------------------------------
  function call(method, path, body, isForm) {
    var headers = {};
    if (state.token) headers.Authorization = "Bearer " + state.token;
    if (body && !isForm) headers["Content-Type"] = "application/json";
    return fetch(API + path, {
      method: method, headers: headers, credentials: "omit", mode: "cors",
      body: body ? (isForm ? body : JSON.stringify(body)) : undefined
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) { var err = new Error((data.error && data.error.message) || response.status); err.status = response.status; throw err; }
        return data.data;
      });
    });
  }

  // --- DOM --------------------------------------------------------------------------------
  var host = el("div", { "data-botplatform-chat": CONFIG.channel });
  var root = host.attachShadow({ mode: "open" });
  if (root.adoptedStyleSheets !== undefined && window.CSSStyleSheet) {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } else {
    root.appendChild(el("style", {}, CSS));
  }
  var launcher = el("button", { "class": "launcher", type: "button", "aria-label": T.open, "aria-expanded": "false" });
  launcher.appendChild(icon("chat", true));
  var badge = el("span", { "class": "badge", "aria-hidden": "true" });
  badge.hidden = true;
  launcher.appendChild(badge);
  var panel = el("section", { "class": "panel", role: "dialog", "aria-label": T.title });
  panel.hidden = true;
  var header = el("header");
  var logo = el("img", { alt: "" });
  logo.hidden = true;
  var title = el("h2", { id: "bp-title" }, T.title);
  var closer = el("button", { type: "button", "aria-label": T.close }, "×");
  header.append(logo, title, closer);
  var notice = el("div", { "class": "notice", role: "status" });
  notice.hidden = true;
  var log = el("div", { "class": "log", role: "log", "aria-live": "polite", "aria-label": T.title, tabindex: "0" });
  var typing = el("div", { "class": "typing", "aria-live": "polite" }, T.typing);
  typing.hidden = true;
  var prechat = el("form", { "class": "prechat", novalidate: "" });
  prechat.hidden = true;
  var form = el("form");
  var input = el("textarea", { rows: "1", "aria-label": T.message, placeholder: T.message, maxlength: "4096" });
  var file = el("input", { type: "file", accept: "image/jpeg,image/png,image/webp,application/pdf,text/plain", "class": "sr", tabindex: "-1", "aria-hidden": "true" });
  var attach = el("button", { type: "button", "class": "icon", "aria-label": T.attach });
  attach.appendChild(icon("clip", false));
  var sendButton = el("button", { type: "submit", "class": "send" }, T.send);
  form.append(attach, file, input, sendButton);
  panel.append(header, notice, log, typing, prechat, form);
  root.append(launcher, panel);

  function setColor(color) { host.style.setProperty("--bp-color", color || "#0b7a5a"); }
  setColor(null);

  function showUnread() {
    badge.hidden = state.unread === 0;
    badge.textContent = String(state.unread);
    launcher.setAttribute("aria-label", state.unread ? T.open + " — " + t("unread", state.unread) : T.open);
  }

  function toggle(open) {
    state.open = open;
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", String(open));
    launcher.setAttribute("aria-label", open ? T.close : T.open);
    if (open) {
      state.unread = 0; showUnread();
      (prechat.hidden ? input : prechat.querySelector("input")).focus();
      markRead();
    } else {
      launcher.focus();
    }
  }
  launcher.addEventListener("click", function () { toggle(!state.open); });
  closer.addEventListener("click", function () { toggle(false); });
  panel.addEventListener("keydown", function (event) { if (event.key === "Escape") toggle(false); });

  // --- messages ---------------------------------------------------------------------------
  function safeUrl(url) {
    if (typeof url !== "string") return null;
    if (url.indexOf("https://") === 0 || url.indexOf(BASE + "/") === 0) return url;
    return null;
  }

  function choices(message) {
    var box = el("div", { "class": "choices", role: "group", "aria-label": T.choose });
    function add(choice, description) {
      var button = el("button", { type: "button" }, choice.title);
      if (description) button.appendChild(el("span", { "class": "row-desc" }, description));
      button.addEventListener("click", function () { sendText(choice.title, { id: choice.id, title: choice.title }); });
      box.appendChild(button);
    }
    (message.buttons || []).forEach(function (b) { add(b); });
    (message.sections || []).forEach(function (section) {
      (section.rows || []).forEach(function (row) { add(row, row.description); });
    });
    return box.childNodes.length ? box : null;
  }

  function bubble(message) {
    var mine = message.direction === "inbound";
    var node = el("div", { "class": "msg " + (mine ? "in" : "out") });
    node.appendChild(el("span", { "class": "sr" }, (mine ? T.you : T.them) + ": "));
    var media = message.media, url = media && safeUrl(media.url);
    if (url && media.mime && media.mime.indexOf("image/") === 0) {
      node.appendChild(el("img", { src: url, alt: media.filename || "" }));
    } else if (url) {
      node.appendChild(el("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, media.filename || url));
    }
    if (message.text) node.appendChild(document.createTextNode(message.text));
    if (message.failed) {
      node.classList.add("failed");
      node.setAttribute("title", T.failed);
      node.appendChild(el("span", { "class": "row-desc" }, T.failed));
      node.addEventListener("click", function () { message.failed = false; deliver(message); render(); });
    }
    return node;
  }

  function render() {
    log.textContent = "";
    if (state.widget && state.widget.welcome_message) {
      log.appendChild(bubble({ direction: "outbound", text: state.widget.welcome_message }));
    }
    var list = state.order.map(function (id) { return state.messages[id]; });
    list.sort(function (a, b) { return a.at < b.at ? -1 : a.at > b.at ? 1 : 0; });
    var lastMine = null;
    list.forEach(function (message, index) {
      log.appendChild(bubble(message));
      if (message.direction === "inbound") lastMine = message;
      if (message.direction === "outbound" && index === list.length - 1) {
        var box = choices(message);
        if (box) log.appendChild(box);
      }
    });
    if (lastMine && state.seenUpto && (lastMine.pid === state.seenUpto || lastMine.seen)) {
      log.appendChild(el("div", { "class": "meta" }, T.seen));
    }
    log.scrollTop = log.scrollHeight;
  }

  function keyOf(message) {
    // A visitor message is known first by its client id, then by its stored row.
    if (message.direction === "inbound" && message.pid) {
      var local = message.pid.split(":").pop();
      if (state.messages["c:" + local]) return "c:" + local;
    }
    return message.id;
  }

  function merge(messages, pushed) {
    var fresh = 0;
    messages.forEach(function (message) {
      var key = keyOf(message), known = state.messages[key];
      if (!known) {
        state.order.push(key);
        if (message.direction === "outbound" && message.status !== "read") fresh++;
      }
      state.messages[key] = Object.assign({}, known || {}, message, { failed: false });
      if (message.updated_at && (!state.cursor || message.updated_at > state.cursor)) state.cursor = message.updated_at;
    });
    if (fresh) {
      typing.hidden = true;
      if (!state.open || document.hidden) { state.unread += fresh; showUnread(); }
    }
    render();
    if (state.open) markRead();
    return pushed;
  }

  function markRead() {
    if (!state.open || document.hidden) return;
    var ids = state.order.map(function (k) { return state.messages[k]; }).filter(function (m) {
      return m.direction === "outbound" && m.pid && m.status !== "read" && !m.readSent;
    });
    if (!ids.length) return;
    ids.forEach(function (m) { m.readSent = true; });
    var pids = ids.map(function (m) { return m.pid; });
    if (socketOpen()) state.socket.send(JSON.stringify({ type: "read", ids: pids }));
    else call("POST", "/read", { ids: pids }).catch(function () { ids.forEach(function (m) { m.readSent = false; }); });
  }
  document.addEventListener("visibilitychange", markRead);

  // --- sending ----------------------------------------------------------------------------
  function deliver(message) {
    var body = { client_id: message.client_id, text: message.text };
    if (message.reply) body.reply = message.reply;
    if (socketOpen()) {
      state.socket.send(JSON.stringify(Object.assign({ type: "message" }, body)));
      // The socket acknowledges; if it drops first, the history tells, or the POST retries.
      setTimeout(function () { if (!message.acked) post(message, body, 0); }, 5000);
      return;
    }
    post(message, body, 0);
  }

  function post(message, body, attempt) {
    call("POST", "/messages", body).then(function () { message.acked = true; }).catch(function (err) {
      if (err.status && err.status < 500 && err.status !== 429) { message.failed = true; render(); return; }
      if (attempt < 5) setTimeout(function () { post(message, body, attempt + 1); }, 1000 * Math.pow(2, attempt));
      else { message.failed = true; render(); }
    });
  }

  function sendText(text, reply) {
    text = String(text || "").trim();
    if (!text) return;
    var clientId = newId();
    var message = { id: "c:" + clientId, client_id: clientId, direction: "inbound", text: text,
      reply: reply || null, at: new Date().toISOString(), status: "sending" };
    state.messages[message.id] = message;
    state.order.push(message.id);
    render();
    deliver(message);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    sendText(input.value);
    input.value = "";
    input.focus();
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit")); }
  });
  attach.addEventListener("click", function () { file.click(); });
  file.addEventListener("change", function () {
    var chosen = file.files && file.files[0];
    file.value = "";
    if (!chosen) return;
    var clientId = newId();
    var message = { id: "c:" + clientId, client_id: clientId, direction: "inbound", text: chosen.name,
      at: new Date().toISOString(), status: "sending" };
    state.messages[message.id] = message;
    state.order.push(message.id);
    render();
    var data = new FormData();
    data.append("file", chosen);
    data.append("client_id", clientId);
    call("POST", "/uploads", data, true).then(function () { message.acked = true; }).catch(function (err) {
      message.failed = false;
      message.text = err.status === 413 ? T.tooBig : T.failed;
      render();
    });
  });

  // --- receiving: a socket, else long-polling ---------------------------------------------
  function socketOpen() { return state.socket && state.socket.readyState === 1 && state.socket.ready; }

  function history(wait) {
    var query = [];
    if (state.cursor) query.push("since=" + encodeURIComponent(state.cursor));
    if (wait) query.push("wait=true");
    return call("GET", "/messages" + (query.length ? "?" + query.join("&") : "")).then(function (found) { merge(found || []); });
  }

  function onPush(event) {
    var data;
    try { data = JSON.parse(event.data); } catch (e) { return; }
    if (data.type === "ready") { state.socket.ready = true; state.socketFails = 0; notice.hidden = !closedNotice(); history(false); }
    else if (data.type === "message" && data.message) merge([data.message], true);
    else if (data.type === "typing") typing.hidden = !data.on;
    else if (data.type === "seen") { state.seenUpto = data.upto; markSeen(data.upto); render(); }
    else if (data.type === "ack" && data.client_id) { var m = state.messages["c:" + data.client_id]; if (m) m.acked = true; }
  }

  function markSeen(upto) {
    state.order.forEach(function (k) { var m = state.messages[k]; if (m.direction === "inbound") m.seen = true; });
    return upto;
  }

  function connect() {
    if (state.polling) return;
    if (!window.WebSocket || state.socketFails >= 2) { poll(); return; }
    var socket;
    try { socket = new WebSocket(API.replace(/^http/, "ws") + "/socket"); } catch (e) { state.socketFails = 2; poll(); return; }
    state.socket = socket;
    socket.onopen = function () { socket.send(JSON.stringify({ type: "hello", token: state.token })); };
    socket.onmessage = onPush;
    socket.onclose = function (event) {
      var wasReady = socket.ready;
      state.socket = null;
      if (event.code === 4401) { session().then(connect); return; }
      if (!wasReady) state.socketFails++;
      var delay = Math.min(30000, 500 * Math.pow(2, state.socketFails));
      setTimeout(connect, wasReady ? 500 : delay);
    };
  }

  var SOCKET_RETRY_MS = 60000;

  function poll() {
    if (!state.polling) { state.polling = true; state.socketRetryAt = Date.now() + SOCKET_RETRY_MS; }
    if (window.WebSocket && Date.now() > state.socketRetryAt) {
      // Every minute the socket is tried again; two more refusals bring the polls back.
      state.polling = false; state.socketFails = 0; connect(); return;
    }
    history(true).then(function () { setTimeout(poll, 100); }, function (err) {
      if (err.status === 401) { session().then(function () { setTimeout(poll, 100); }); return; }
      setTimeout(poll, Math.min(30000, 2000 * Math.pow(2, Math.min(state.pollFails = (state.pollFails || 0) + 1, 4))));
    }).then(function () { state.pollFails = 0; });
  }

  // --- the session ------------------------------------------------------------------------
  function closedNotice() {
    var widget = state.widget;
    if (!widget || widget.open) return false;
    var minutes = widget.reopens_in_minutes, text = T.away;
    if (minutes) text += " " + t("replyIn", minutes >= 90 ? t("hours", Math.round(minutes / 60)) : t("minutes", minutes));
    notice.textContent = text;
    return true;
  }

  function preChatForm(fields) {
    if (!fields.length || saved.prechat) return;
    prechat.textContent = "";
    var inputs = {};
    fields.forEach(function (name) {
      var label = el("label", {}, T[name]);
      var field = el("input", { name: name, type: name === "email" ? "email" : "text", autocomplete: name, maxlength: "100" });
      label.appendChild(field);
      inputs[name] = field;
      prechat.appendChild(label);
    });
    prechat.appendChild(el("button", { type: "submit", "class": "send" }, T.start));
    prechat.hidden = false;
    form.hidden = true;
    prechat.addEventListener("submit", function (event) {
      event.preventDefault();
      var body = {};
      for (var name in inputs) if (inputs[name].value.trim()) body[name] = inputs[name].value.trim();
      if (inputs.email && inputs.email.value && !inputs.email.checkValidity()) { inputs.email.focus(); return; }
      call("POST", "/profile", body).then(function () {
        saved.prechat = true; persist();
        prechat.hidden = true; form.hidden = false; input.focus();
      }).catch(function () { inputs[fields[0]].focus(); });
    });
  }

  function session() {
    var identity = window.BotplatformChat || {};
    var body = { token: state.token };
    if (identity.user_id) { body.user_id = String(identity.user_id); body.user_hash = String(identity.user_hash || ""); }
    return call("POST", "/session", body).then(function (data) {
      state.token = data.token;
      state.widget = data.widget;
      persist();
      setColor(data.widget.primary_color);
      title.textContent = data.widget.name || T.title;
      panel.setAttribute("aria-label", title.textContent);
      var logoUrl = data.widget.logo_url && (data.widget.logo_url.charAt(0) === "/" ? BASE + data.widget.logo_url : safeUrl(data.widget.logo_url));
      if (logoUrl) { logo.src = logoUrl; logo.hidden = false; }
      notice.hidden = !closedNotice();
      preChatForm(data.widget.pre_chat_fields || []);
      render();
      return history(false);
    });
  }

  function start() {
    document.body.appendChild(host);
    // Replies that came while the visitor was away count as unread until the panel opens.
    session().then(connect).catch(function () { host.remove(); });
  }
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
