// The runbook editor (templates/runbooks/authoring/edit.html): step rows added, removed and reordered by
// keyboard (Up / Down buttons) and mouse (drag by the handle), and the live Markdown preview, rendered by
// the server's sanitising renderer (POST runbooks:authoring_preview). Without JavaScript the form still
// works: rows post in page order and "Preview as the engineer sees it" renders on the server.
(function () {
  "use strict";

  const form = document.getElementById("runbook-form");
  if (!form) return;
  const list = form.querySelector("[data-step-list]");
  const template = form.querySelector("[data-step-template]");
  const status = form.querySelector("[data-step-status]");
  let nextKey = 1;
  let dirty = false;

  const rows = () => Array.from(list.querySelectorAll("[data-step-row]"));
  const announce = (text) => { status.textContent = ""; window.setTimeout(() => { status.textContent = text; }, 30); };

  function renumber() {
    const all = rows();
    all.forEach((row, index) => {
      const number = index + 1;
      row.querySelector("[data-step-number]").textContent = String(number);
      const up = row.querySelector('[data-move="up"]');
      const down = row.querySelector('[data-move="down"]');
      up.setAttribute("aria-label", `Move step ${number} up`);
      down.setAttribute("aria-label", `Move step ${number} down`);
      row.querySelector("[data-remove]").setAttribute("aria-label", `Remove step ${number}`);
      up.disabled = index === 0;
      down.disabled = index === all.length - 1;
    });
  }

  function addRow() {
    const key = `n${nextKey++}`;
    const html = template.innerHTML.replaceAll("__key__", key);
    list.insertAdjacentHTML("beforeend", html);
    renumber();
    const row = rows().at(-1);
    row.querySelector('input[name="step_title"]').focus();
    announce(`Step ${rows().length} added.`);
    dirty = true;
  }

  function move(row, direction) {
    const sibling = direction === "up" ? row.previousElementSibling : row.nextElementSibling;
    if (!sibling) return;
    if (direction === "up") list.insertBefore(row, sibling); else list.insertBefore(sibling, row);
    renumber();
    const button = row.querySelector(`[data-move="${direction}"]`);
    (button.disabled ? row.querySelector(`[data-move="${direction === "up" ? "down" : "up"}"]`) : button).focus();
    announce(`Step moved to position ${rows().indexOf(row) + 1} of ${rows().length}.`);
    dirty = true;
  }

  function remove(row) {
    const index = rows().indexOf(row);
    row.remove();
    if (rows().length === 0) addRow();
    renumber();
    const next = rows()[Math.min(index, rows().length - 1)];
    next.querySelector("[data-remove]").focus();
    announce(`Step ${index + 1} removed.`);
    dirty = true;
  }

  list.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    const row = button.closest("[data-step-row]");
    if (button.dataset.move) move(row, button.dataset.move);
    else if (button.hasAttribute("data-remove")) remove(row);
  });
  form.querySelector("[data-add-step]").addEventListener("click", addRow);

  // Mouse: the handle is what is dragged (so text in the fields stays selectable); the row moves with it.
  let dragged = null;
  list.addEventListener("dragstart", (event) => {
    if (!event.target.closest || !event.target.closest("[data-drag-handle]")) return;
    dragged = event.target.closest("[data-step-row]");
    dragged.classList.add("dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", "step");
  });
  list.addEventListener("dragover", (event) => {
    if (!dragged) return;
    event.preventDefault();
    const over = event.target.closest("[data-step-row]");
    if (!over || over === dragged) return;
    const box = over.getBoundingClientRect();
    list.insertBefore(dragged, event.clientY < box.top + box.height / 2 ? over : over.nextElementSibling);
  });
  list.addEventListener("drop", (event) => event.preventDefault());
  list.addEventListener("dragend", () => {
    if (!dragged) return;
    dragged.classList.remove("dragging");
    renumber();
    announce(`Step moved to position ${rows().indexOf(dragged) + 1} of ${rows().length}.`);
    dragged = null;
    dirty = true;
  });

  // Live preview of the Markdown through the server's renderer (the same as the runbook page).
  const body = form.querySelector('textarea[name="body_markdown"]');
  const preview = document.getElementById("body-preview");
  const note = form.querySelector("[data-front-matter-note]");
  const csrf = document.body.dataset.csrfToken;
  let timer = 0;
  let sent = 0;
  async function refreshPreview() {
    const mine = ++sent;
    const data = new FormData();
    data.append("body_markdown", body.value);
    try {
      const response = await fetch(form.dataset.previewUrl, {
        method: "POST", body: data, headers: { "X-CSRFToken": csrf }, credentials: "same-origin",
      });
      const payload = await response.json();
      if (mine !== sent) return; // a newer preview is on its way
      if (!response.ok) {
        note.hidden = false;
        note.textContent = payload.detail || payload.error || "The preview is not available.";
        return;
      }
      preview.innerHTML = payload.html; // sanitised on the server (markdown-it without HTML, then nh3)
      note.hidden = payload.front_matter.length === 0;
      note.textContent = payload.front_matter.length
        ? `The metadata block at the top is not content: when you save, it fills these fields: ${payload.front_matter.join(", ")}.`
        : "";
    } catch (error) {
      note.hidden = false;
      note.textContent = "The preview could not be refreshed (connection problem); your text is kept.";
    }
  }
  if (body && preview) {
    body.addEventListener("input", () => {
      window.clearTimeout(timer);
      timer = window.setTimeout(refreshPreview, 300);
    });
  }

  // Leaving with unsaved changes asks first; saving or previewing does not.
  form.addEventListener("input", () => { dirty = true; });
  form.addEventListener("submit", () => { dirty = false; });
  window.addEventListener("beforeunload", (event) => {
    if (dirty) { event.preventDefault(); event.returnValue = ""; }
  });

  renumber();
  const errors = document.getElementById("form-errors");
  if (errors && !window.location.hash) errors.focus();
})();
