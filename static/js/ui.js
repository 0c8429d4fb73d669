/* Page behaviour shared by every page (docs/ui.md):
 *  - a "Copy command" button beside every code block, also those in answers streamed in later
 *    (clipboard API, with a fallback for plain-HTTP deployments); "Copied" is announced politely;
 *  - long runbook names (CamelCase alert names) get <wbr> between their words, so a narrow card wraps
 *    "KubePodCrash / Looping" and never inside a word (the server's HTML keeps the plain name);
 *  - on the execution page, a confirmation before finishing with unticked steps (named) or with
 *    "it did not work" and no note. The server asks the same without JavaScript (confirm=1). */
(function () {
  "use strict";

  var announcer = null;

  function announce(text) {
    if (!announcer) {
      announcer = document.createElement("p");
      announcer.className = "visually-hidden";
      announcer.setAttribute("role", "status");
      announcer.setAttribute("aria-live", "polite");
      document.body.appendChild(announcer);
    }
    announcer.textContent = "";
    // A fresh text node, so the same word said twice is announced twice.
    window.setTimeout(function () { announcer.textContent = text; }, 50);
  }

  function copyWithSelection(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
    area.remove();
    return copied;
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).then(function () { return true; }, function () {
        return copyWithSelection(text);
      });
    }
    return Promise.resolve(copyWithSelection(text));
  }

  function onCopy(button) {
    var pre = button.parentElement.querySelector("pre");
    if (!pre) return;
    var text = pre.textContent.replace(/\n$/, "");
    copyText(text).then(function (copied) {
      if (copied) {
        button.textContent = "Copied";
        button.classList.add("copied");
        announce("Copied");
      } else {
        // Nothing could reach the clipboard: select the command so Ctrl+C / Cmd+C does it.
        window.getSelection().selectAllChildren(pre);
        announce("Could not copy: the command is selected, press Ctrl+C to copy it.");
      }
      window.setTimeout(function () {
        button.textContent = "Copy command";
        button.classList.remove("copied");
      }, 2000);
    });
  }

  /* Wraps each code block not yet wrapped with its copy button; a block that scrolls is focusable so
   * it can be scrolled from the keyboard. */
  function addCopyButtons(root) {
    if (!root || !root.querySelectorAll) return;
    root.querySelectorAll("pre").forEach(function (pre) {
      if (pre.parentElement.classList.contains("code-block")) return;
      var wrapper = document.createElement("div");
      wrapper.className = "code-block";
      pre.parentElement.insertBefore(wrapper, pre);
      wrapper.appendChild(pre);
      if (!pre.hasAttribute("tabindex")) pre.setAttribute("tabindex", "0");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "copy-button";
      button.textContent = "Copy command";
      wrapper.appendChild(button);
    });
  }

  // Between the words of CamelCase ("KubePod|Crash|Looping", "TLS|Certificate") and after separators.
  // Built at run time: a lookbehind literal is a syntax error in Safari before 16.4, which would stop the
  // whole file (copy buttons, finish dialog); there titles only lose their extra break points.
  var BREAK_AT = null;
  try {
    BREAK_AT = new RegExp("(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[-_/.:])(?=\\w)");
  } catch (error) {
    BREAK_AT = null;
  }
  var TITLES = ".card-title, .runbook-title";

  function addWordBreaks(root) {
    if (!BREAK_AT || !root || !root.querySelectorAll) return;
    var titles = Array.prototype.slice.call(root.querySelectorAll(TITLES));
    if (root.matches && root.matches(TITLES)) titles.push(root);
    titles.forEach(function (title) {
      if (title.dataset.wordBreaks) return;
      title.dataset.wordBreaks = "true";
      var walker = document.createTreeWalker(title, NodeFilter.SHOW_TEXT);
      var texts = [];
      while (walker.nextNode()) texts.push(walker.currentNode);
      texts.forEach(function (text) {
        var parts = text.data.split(BREAK_AT);
        if (parts.length < 2) return;
        var fragment = document.createDocumentFragment();
        parts.forEach(function (part, index) {
          if (index) fragment.appendChild(document.createElement("wbr"));
          fragment.appendChild(document.createTextNode(part));
        });
        text.replaceWith(fragment);
      });
    });
  }

  function stepTitle(item) {
    return "Step " + item.dataset.stepNumber + ": " + (item.dataset.stepTitle || "");
  }

  function setupFinishDialog() {
    var form = document.getElementById("finish-form");
    var dialog = document.getElementById("finish-dialog");
    if (!form || !dialog || typeof dialog.showModal !== "function") return;
    var confirmField = form.querySelector("input[name=confirm]");
    var notes = document.getElementById("id_notes");
    var unticked = document.getElementById("finish-dialog-unticked");
    var count = document.getElementById("finish-dialog-count");
    var list = document.getElementById("finish-dialog-steps");
    var noteBox = document.getElementById("finish-dialog-note");
    var dialogNotes = document.getElementById("finish-dialog-notes");
    var confirmButton = document.getElementById("finish-dialog-confirm");
    var pending = null;

    form.addEventListener("submit", function (event) {
      if (confirmField.value === "1") return;
      var submitter = event.submitter;
      var outcome = submitter ? submitter.value : "";
      // The checklist is swapped by htmx as steps are ticked: read it now, not at load.
      var open = Array.prototype.slice.call(document.querySelectorAll(".checklist > li:not(.done)"));
      var missingNote = outcome === "failed" && !notes.value.trim();
      if (!open.length && !missingNote) return;
      event.preventDefault();
      pending = submitter;
      unticked.hidden = !open.length;
      count.textContent = open.length === 1 ? "1 step is not ticked:" : open.length + " steps are not ticked:";
      list.replaceChildren.apply(list, open.map(function (item) {
        var entry = document.createElement("li");
        entry.textContent = stepTitle(item);
        return entry;
      }));
      noteBox.hidden = !missingNote;
      dialogNotes.value = "";
      confirmButton.textContent = outcome === "failed" ? "Finish: it did not work" : "Finish anyway: it worked";
      dialog.showModal();
      (missingNote ? dialogNotes : confirmButton).focus();
    });

    confirmButton.addEventListener("click", function () {
      if (!noteBox.hidden && dialogNotes.value.trim()) notes.value = dialogNotes.value;
      confirmField.value = "1";
      dialog.close();
      form.requestSubmit(pending);
    });
    document.getElementById("finish-dialog-cancel").addEventListener("click", function () {
      dialog.close();
    });
    dialog.addEventListener("close", function () {
      if (confirmField.value !== "1" && pending) pending.focus();
    });
  }

  function setup() {
    addCopyButtons(document.body);
    addWordBreaks(document.body);
    setupFinishDialog();
    document.addEventListener("click", function (event) {
      var button = event.target instanceof Element && event.target.closest(".copy-button");
      if (button) onCopy(button);
    });
    // Code arrives later too: streamed answers, widget history, htmx swaps.
    new MutationObserver(function (records) {
      records.forEach(function (record) {
        record.addedNodes.forEach(function (node) {
          if (node.nodeType !== 1) return;
          if (node.tagName === "PRE") addCopyButtons(node.parentElement);
          else addCopyButtons(node);
          addWordBreaks(node);
        });
      });
    }).observe(document.body, { childList: true, subtree: true });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
  else setup();

  window.RunbookUI = { addCopyButtons: addCopyButtons, addWordBreaks: addWordBreaks, announce: announce };
})();
