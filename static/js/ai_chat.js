/* The chat page: streamed answers (via window.RunbookChat from agent_widget.js), Enter to send,
 * loading and error states, the sessions sidebar refreshed and the URL updated after each answer. */
(function () {
  "use strict";

  function setup() {
    var form = document.getElementById("chat-form");
    if (!form || !window.RunbookChat || form.dataset.bound) return;
    form.dataset.bound = "true";
    var conversation = document.getElementById("conversation");
    var input = document.getElementById("chat-input");
    var button = document.getElementById("chat-send");
    var status = document.getElementById("chat-status");
    var messages = document.getElementById("chat-messages");
    var sessionInput = form.querySelector("input[name=session_id]");
    window.RunbookTracking.bind(messages, "chat_page");

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
          window.htmx.ajax("GET", "/chat/sessions?current=" + encodeURIComponent(done.session_id), {
            target: "#session-list", swap: "outerHTML",
          });
        }
      }, function (error) {
        status.textContent = error.message;
      }).finally(function () {
        input.disabled = false;
        button.disabled = false;
        form.removeAttribute("aria-busy");
        input.focus();
      });
    });
    input.focus();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
  else setup();
  // A session opened from the sidebar swaps in a new conversation (htmx): wire its form again.
  document.addEventListener("htmx:afterSettle", setup);
})();
