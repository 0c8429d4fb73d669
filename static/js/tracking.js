/* What engineers do with AI answers, shared by the chat page (ai_chat.js) and the widget
 * (agent_widget.js) as window.RunbookTracking. One delegated listener per answers container covers
 * answers already on the page, reloaded from history and streamed in later:
 *  - a runbook link in an answer: POST /api/ai-helper/track-choice (fetch keepalive, so the request
 *    survives the navigation it accompanies; navigation is never delayed) and &source=<ui> is added
 *    to its ?from=<audit log> href, so the runbook page records viewed_detail;
 *  - thumbs on a runbook card: one feedback_positive|feedback_negative event (POST /api/ai-helper/events);
 *  - thumbs on the whole answer: POST /api/ai-helper/answer-feedback.
 * See docs/tracking.md ("Browser side"). */
(function () {
  "use strict";

  var TRACK_URL = "/api/ai-helper/track-choice";
  var EVENTS_URL = "/api/ai-helper/events";
  var ANSWER_FEEDBACK_URL = "/api/ai-helper/answer-feedback";
  var MIDDLE_BUTTON = 1;

  function csrfToken() {
    var token = document.body && document.body.dataset.csrfToken;
    if (token) return token;
    var match = /(?:^|;\s*)csrftoken=([^;]+)/.exec(document.cookie);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function uuid4() {
    if (window.crypto.randomUUID) return window.crypto.randomUUID();
    // randomUUID exists only in secure contexts (HTTPS, localhost); plain-HTTP deployments get this.
    var bytes = window.crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) { return (b + 0x100).toString(16).slice(1); }).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  /* sendBeacon cannot send the CSRF header, so: fetch with keepalive (outlives the page). */
  function postJSON(url, body) {
    return fetch(url, {
      method: "POST",
      keepalive: true,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body),
    });
  }

  /* The server renders ?from=<audit log id>; which UI showed the link is only known here. */
  function addSource(link, source) {
    var url = new URL(link.getAttribute("href"), window.location.href);
    if (url.origin !== window.location.origin) return;
    if (!url.searchParams.get("from")) url.searchParams.set("from", link.dataset.auditLogId);
    url.searchParams.set("source", source);
    link.setAttribute("href", url.pathname + url.search + url.hash);
  }

  function trackLink(link, source) {
    postJSON(TRACK_URL, {
      audit_log_id: link.dataset.auditLogId,
      event_id: uuid4(),
      source: source,
      choice_data: {
        solution_chosen_id: link.dataset.runbookId,
        solution_chosen_type: "runbook",
        user_action: "clicked_link",
        solution_chosen_rank: Number(link.dataset.rank),
      },
    }).catch(function () {
      // The page is usually being left; there is nobody to tell. The detail page still records the view.
    });
  }

  function feedbackRequest(group, button, answer, source, eventId) {
    var rating = button.dataset.rating;
    if (group.dataset.feedback === "runbook") {
      var card = button.closest("[data-runbook-id]");
      return postJSON(EVENTS_URL, {
        events: [{
          event_id: eventId,
          event_type: rating === "up" ? "feedback_positive" : "feedback_negative",
          runbook_id: card.dataset.runbookId,
          audit_log_id: answer.dataset.auditLogId,
          rank: Number(card.dataset.rank),
          source: source,
          client_timestamp: new Date().toISOString(),
        }],
      });
    }
    return postJSON(ANSWER_FEEDBACK_URL, { audit_log_id: answer.dataset.auditLogId, rating: rating, event_id: eventId });
  }

  function sendFeedback(button, source) {
    var group = button.closest(".feedback");
    var answer = button.closest(".msg-assistant");
    if (!group || !answer) return;
    if (group.getAttribute("aria-busy") === "true" || button.getAttribute("aria-pressed") === "true") return;
    var status = group.querySelector(".feedback-status");
    // Kept until it is stored, so a retry after a lost reply is recognised as the same feedback.
    var eventId = button.dataset.eventId || (button.dataset.eventId = uuid4());
    group.setAttribute("aria-busy", "true");
    group.classList.remove("feedback-failed");
    status.textContent = "Saving…";
    feedbackRequest(group, button, answer, source, eventId).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      delete button.dataset.eventId;
      group.querySelectorAll(".feedback-button").forEach(function (other) {
        other.setAttribute("aria-pressed", other === button ? "true" : "false");
      });
      group.classList.add("feedback-done");
      status.textContent = button.dataset.rating === "up" ? "Thanks, noted as helpful." : "Thanks, noted as not helpful.";
    }).catch(function (error) {
      group.classList.add("feedback-failed");
      status.textContent = "Your feedback could not be saved (" + error.message + "). Try again.";
    }).finally(function () {
      group.removeAttribute("aria-busy");
    });
  }

  /* One listener on the answers container; source is "chat_page" or "widget". */
  function bind(container, source) {
    if (!container || container.dataset.trackingSource) return;
    container.dataset.trackingSource = source;
    function onInteraction(event) {
      if (!(event.target instanceof Element)) return;
      var link = event.target.closest("a.runbook-link");
      if (link) {
        if (!container.contains(link) || !link.closest(".msg-assistant")) return;
        if (!link.dataset.runbookId || !link.dataset.auditLogId) return;
        // Also on contextmenu, so "open in new tab" from the menu reaches the page with its source.
        addSource(link, source);
        if (event.type === "click" || (event.type === "auxclick" && event.button === MIDDLE_BUTTON)) {
          trackLink(link, source);
        }
        return;
      }
      var button = event.type === "click" && event.target.closest(".feedback-button");
      if (button && container.contains(button)) sendFeedback(button, source);
    }
    ["click", "auxclick", "contextmenu"].forEach(function (type) {
      container.addEventListener(type, onInteraction);
    });
  }

  window.RunbookTracking = { bind: bind, csrfToken: csrfToken, uuid4: uuid4 };
})();
