/* Floating runbook helper on every page, and the streaming client the chat page shares (window.RunbookChat).
 * Needs tracking.js (window.RunbookTracking), loaded before it by base.html.
 * Answers stream from POST /chat/stream as server-sent events: delta* [reset] done | error.
 * Streamed text is shown as plain text; only the final, server-sanitised HTML is inserted as HTML. */
(function () {
  "use strict";

  var csrfToken = window.RunbookTracking.csrfToken;

  function parseEvent(block) {
    var event = "message";
    var data = "";
    block.split("\n").forEach(function (line) {
      if (line.indexOf("event:") === 0) event = line.slice(6).trim();
      else if (line.indexOf("data:") === 0) data += line.slice(5).trim();
    });
    return { event: event, data: data ? JSON.parse(data) : {} };
  }

  function errorMessage(body, status) {
    if (body && body.fields) {
      var parts = [];
      Object.keys(body.fields).forEach(function (key) {
        var value = body.fields[key];
        parts.push(Array.isArray(value) ? value.join(" ") : typeof value === "object" ? JSON.stringify(value) : String(value));
      });
      if (parts.length) return parts.join(" ");
    }
    if (body && body.detail) return body.detail;
    return "The helper could not answer (HTTP " + status + "). Try again.";
  }

  async function streamAnswer(options) {
    var response = await fetch(options.url || "/chat/stream", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "text/event-stream", "X-CSRFToken": csrfToken() },
      body: JSON.stringify({
        message: options.message,
        session_id: options.sessionId || null,
        page_context: options.pageContext || {},
        source: options.source,
      }),
    });
    if (!response.ok) {
      var body = null;
      try { body = await response.json(); } catch (e) { body = null; }
      var failure = new Error(errorMessage(body, response.status));
      failure.status = response.status;
      throw failure;
    }
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    for (;;) {
      var chunk = await reader.read();
      if (chunk.done) break;
      buffer += decoder.decode(chunk.value, { stream: true });
      var end;
      while ((end = buffer.indexOf("\n\n")) !== -1) {
        var parsed = parseEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (parsed.event === "delta" && options.onDelta) options.onDelta(parsed.data.text || "");
        else if (parsed.event === "reset" && options.onReset) options.onReset(parsed.data.reason || "");
        else if (parsed.event === "error") throw new Error(parsed.data.message || "The helper failed to answer.");
        else if (parsed.event === "done") return parsed.data;
      }
    }
    throw new Error("The connection closed before the answer was complete. Try again.");
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function htmlFragment(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    return template.content;
  }

  /* The end of a conversation in view: the messages box scrolls (chat page, widget), not the page, so the
   * composer below it never covers the last card's badge and feedback buttons. */
  function scrollToEnd(container) {
    var scrolls = window.getComputedStyle(container).overflowY;
    if ((scrolls === "auto" || scrolls === "scroll") && container.scrollHeight > container.clientHeight) {
      container.scrollTop = container.scrollHeight;
    } else if (container.lastElementChild) {
      container.lastElementChild.scrollIntoView({ block: "end" });
    }
  }

  /* Shows the question, a loading answer that fills as text streams in, then the final answer. */
  function ask(options) {
    var container = options.container;
    var user = element("article", "msg msg-user");
    user.setAttribute("aria-label", "You said");
    user.appendChild(element("div", "msg-body", options.message));
    container.appendChild(user);
    var pending = element("article", "msg msg-assistant msg-pending");
    pending.setAttribute("aria-busy", "true");
    var loading = element("p", "loading", "Finding runbooks…");
    var streamed = element("div", "msg-body streaming");
    pending.appendChild(loading);
    pending.appendChild(streamed);
    container.appendChild(pending);
    scrollToEnd(container);
    return streamAnswer({
      url: options.url,
      message: options.message,
      sessionId: options.sessionId,
      pageContext: options.pageContext,
      source: options.source,
      onDelta: function (text) {
        loading.textContent = "Answering…";
        streamed.textContent += text;
        scrollToEnd(container);
      },
      onReset: function () { streamed.textContent = ""; },
    }).then(function (done) {
      // The question as the server stored it: pasted secrets replaced, with a notice saying so.
      if (done.user_html) user.replaceWith(htmlFragment(done.user_html));
      pending.replaceWith(htmlFragment(done.html));
      scrollToEnd(container);
      return done;
    }, function (error) {
      pending.remove();
      var failed = element("p", "msg msg-error", error.message);
      failed.setAttribute("role", "alert");
      container.appendChild(failed);
      throw error;
    });
  }

  function bindEnterToSend(textarea, form) {
    textarea.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
  }

  window.RunbookChat = {
    streamAnswer: streamAnswer, ask: ask, bindEnterToSend: bindEnterToSend, htmlFragment: htmlFragment,
    scrollToEnd: scrollToEnd,
  };

  var RUNBOOK_PAGE = /^\/runbooks\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\/?$/i;
  var STORAGE_KEY = "runbookHelper.widgetSession";

  function pageContext() {
    var context = { path: window.location.pathname.slice(0, 500), title: document.title.slice(0, 300) };
    var match = RUNBOOK_PAGE.exec(window.location.pathname);
    if (match) context.runbook_id = match[1].toLowerCase();
    return context;
  }

  function setupWidget() {
    var root = document.getElementById("agent-widget");
    if (!root) return;
    var toggle = document.getElementById("agent-widget-toggle");
    var panel = document.getElementById("agent-widget-panel");
    var form = document.getElementById("agent-widget-form");
    var input = document.getElementById("agent-widget-input");
    var messages = document.getElementById("agent-widget-messages");
    var status = document.getElementById("agent-widget-status");
    var sessionId = window.sessionStorage.getItem(STORAGE_KEY) || "";
    var loaded = false;
    window.RunbookTracking.bind(messages, "widget");

    function loadHistory() {
      if (loaded || !sessionId) return;
      loaded = true;
      fetch(root.dataset.chatUrl + sessionId + "/", { credentials: "same-origin", headers: { "HX-Request": "true" } })
        .then(function (response) {
          if (!response.ok) throw new Error("gone");
          return response.text();
        })
        .then(function (html) {
          var previous = htmlFragment(html).querySelector(".chat-messages");
          if (previous) messages.replaceChildren.apply(messages, Array.prototype.slice.call(previous.children));
          scrollToEnd(messages);
        })
        .catch(function () {
          sessionId = "";
          window.sessionStorage.removeItem(STORAGE_KEY);
        });
    }

    function setOpen(open) {
      panel.hidden = !open;
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      if (open) {
        loadHistory();
        input.focus();
      } else {
        toggle.focus();
      }
    }

    toggle.addEventListener("click", function () { setOpen(panel.hidden); });
    document.getElementById("agent-widget-close").addEventListener("click", function () { setOpen(false); });
    document.getElementById("agent-widget-new").addEventListener("click", function () {
      sessionId = "";
      window.sessionStorage.removeItem(STORAGE_KEY);
      messages.replaceChildren();
      input.focus();
    });
    panel.addEventListener("keydown", function (event) {
      if (event.key === "Escape") setOpen(false);
    });
    bindEnterToSend(input, form);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var message = input.value.trim();
      if (!message) {
        status.textContent = "Type a message first.";
        input.focus();
        return;
      }
      input.disabled = true;
      form.setAttribute("aria-busy", "true");
      status.textContent = "Answering…";
      ask({
        url: root.dataset.streamUrl, container: messages, message: message, sessionId: sessionId,
        pageContext: pageContext(), source: "widget",
      }).then(function (done) {
        sessionId = done.session_id;
        window.sessionStorage.setItem(STORAGE_KEY, sessionId);
        input.value = "";
        status.textContent = done.degraded ? "Answered without the AI model (degraded mode)." : "Answered.";
      }, function (error) {
        if (error.status === 404) {
          // The stored conversation is gone or belongs to someone else (another login in this tab).
          sessionId = "";
          window.sessionStorage.removeItem(STORAGE_KEY);
          status.textContent = "That conversation is no longer available; send again to start a new one.";
        } else {
          status.textContent = error.message;
        }
      }).finally(function () {
        input.disabled = false;
        form.removeAttribute("aria-busy");
        input.focus();
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setupWidget);
  else setupWidget();
})();
