/* The chat page: streamed answers (via window.RunbookChat from agent_widget.js), Enter to send,
 * loading and error states, the sessions list refreshed, the heading and URL updated after each answer,
 * and the conversation opened at its latest message. */
(function () {
  "use strict";

  var NARROW = window.matchMedia("(max-width: 760px)");

  /* Opens a conversation where the engineer left it: at the answer a link points to (#answer-<id>,
   * e.g. "back to the chat answer that led here"), else at the latest message. */
  function showLatest(messages) {
    var target = window.location.hash && /^#answer-[0-9a-f-]+$/i.test(window.location.hash)
      ? document.getElementById(window.location.hash.slice(1)) : null;
    if (target && messages.contains(target)) {
      messages.scrollTop += target.getBoundingClientRect().top - messages.getBoundingClientRect().top;
      target.classList.add("msg-target");
    } else {
      window.RunbookChat.scrollToEnd(messages);
    }
  }

  /* The session title is given by the server when the first answer is stored: take it from the
   * refreshed sessions list, so the heading stops saying "New chat". */
  function updateTitle() {
    var current = document.querySelector("#session-list a[aria-current='page']");
    var heading = document.getElementById("chat-title");
    if (!current || !heading) return;
    var title = current.textContent.trim();
    if (!title || heading.textContent === title) return;
    heading.textContent = title;
    document.title = title + " · Chat · Runbook AI Helper";
  }

  function setupSessions() {
    var sessions = document.getElementById("chat-sessions");
    if (!sessions || sessions.dataset.bound) return;
    sessions.dataset.bound = "true";
    // A sidebar on wide screens (its summary is hidden, so it must stay open); collapsed above the chat on phones.
    function fit() { sessions.open = !NARROW.matches; }
    fit();
    NARROW.addEventListener("change", fit);
    sessions.addEventListener("click", function (event) {
      var link = event.target instanceof Element && event.target.closest("#session-list a");
      if (!link) return;
      sessions.querySelectorAll("#session-list a[aria-current]").forEach(function (other) {
        other.removeAttribute("aria-current");
      });
      link.setAttribute("aria-current", "page");
      if (NARROW.matches) sessions.open = false;
    });
  }

  function setup() {
    var form = document.getElementById("chat-form");
    if (!form || !window.RunbookChat || form.dataset.bound) return;
    form.dataset.bound = "true";
    setupSessions();
    var conversation = document.getElementById("conversation");
    var input = document.getElementById("chat-input");
    var button = document.getElementById("chat-send");
    var status = document.getElementById("chat-status");
    var messages = document.getElementById("chat-messages");
    var sessionInput = form.querySelector("input[name=session_id]");
    window.RunbookTracking.bind(messages, "chat_page");
    showLatest(messages);
    if (conversation.dataset.sessionId) {
      document.title = document.getElementById("chat-title").textContent.trim() + " · Chat · Runbook AI Helper";
    }

    window.RunbookChat.bindEnterToSend(input, form);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var message = input.value.trim();
      if (!message) {
        status.textContent = "Type a message first.";
        input.focus();
        return;
      }
      var empty = messages.querySelector(".chat-empty");
      if (empty) empty.remove();
      input.disabled = true;
      button.disabled = true;
      form.setAttribute("aria-busy", "true");
      status.textContent = "Answering…";
      window.RunbookChat.ask({
        container: messages,
        message: message,
        sessionId: sessionInput.value,
        pageContext: { path: window.location.pathname },
        source: "chat_page",
      }).then(function (done) {
        input.value = "";
        status.textContent = done.degraded ? "Answered without the AI model (degraded mode)." : "Answered.";
        if (sessionInput.value !== done.session_id) {
          sessionInput.value = done.session_id;
          conversation.dataset.sessionId = done.session_id;
          window.history.pushState({}, "", done.session_url);
        }
        if (window.htmx) {
          var refreshed = window.htmx.ajax("GET", "/chat/sessions?current=" + encodeURIComponent(done.session_id), {
            target: "#session-list", swap: "outerHTML",
          });
          if (refreshed && refreshed.then) refreshed.then(updateTitle);
        }
      }, function (error) {
        status.textContent = error.message;
      }).finally(function () {
        input.disabled = false;
        button.disabled = false;
        form.removeAttribute("aria-busy");
        // Focus without scrolling: the answer's end stays where ask() put it.
        input.focus({ preventScroll: true });
      });
    });
    if (!NARROW.matches) input.focus({ preventScroll: true });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
  else setup();
  // A session opened from the list swaps in a new conversation (htmx): wire its form again.
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.target && event.target.id === "session-list") updateTitle();
    setup();
  });
})();
