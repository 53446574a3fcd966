// Atlas Compliance console: the open unusual-access flags on the Reports tab (docs/flags.md), each with a link
// to the recorded queries behind it in the Audit events tab and a form to acknowledge it.
"use strict";
(() => {
  const A = window.Atlas;
  const RULES = { volume: "Volume", first_access: "First access", new_actor: "New actor",
                  bulk_export: "Bulk export", off_hours: "Off hours" };

  function acknowledgeForm(flag) {
    const label = `flag ${flag.id}`;
    const choice = A.el("select", { class: "flag-disposition", "aria-label": `Disposition of ${label}` },
      A.el("option", { value: "expected", text: "Expected" }),
      A.el("option", { value: "investigating", text: "Investigating" }),
      A.el("option", { value: "incident", text: "Incident" }));
    const note = A.el("input", { type: "text", class: "flag-note", maxlength: 4000, placeholder: "Why (required)",
                                 "aria-label": `Note on ${label}` });
    const status = A.el("span", { class: "status flag-status", role: "status", "aria-live": "polite" });
    const form = A.el("form", { class: "flag-ack", novalidate: true },
      choice, " ", note, " ", A.el("button", { type: "submit", class: "btn btn-sm", text: "Acknowledge" }), " ", status);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!note.value.trim()) {
        status.textContent = "A note is required.";
        note.focus();
        return;
      }
      status.textContent = "Saving…";
      try {
        await A.api(`/api/v1/admin/flags/${encodeURIComponent(flag.id)}/disposition`, { method: "POST",
          body: { disposition: choice.value, note: note.value } });
        form.closest("tr").remove();
        if (!A.$("#flags-table tbody tr")) showEmpty("No open flags.");
      } catch (error) {
        status.textContent = error.message;
      }
    });
    return form;
  }

  function showEmpty(text) {
    A.$("#flags-wrap").hidden = true;
    const empty = A.$("#flags-empty");
    empty.hidden = false;
    empty.textContent = text;
  }

  function row(flag) {
    const queries = A.urlFor({ tab: "events", from: flag.day, to: flag.day, tz: "UTC", userId: flag.userId,
                               table: flag.tableName });
    return A.el("tr", { "data-flag": flag.id, "data-rule": flag.rule },
      A.el("td", { text: A.fmtDay(flag.day) }),
      A.el("td", { text: RULES[flag.rule] || flag.rule }),
      A.el("td", { class: "mono", text: flag.userId }),
      A.el("td", { class: "mono", text: flag.tableName }),
      A.el("td", { text: flag.explanation }),
      A.el("td", {}, A.el("a", { href: queries, class: "flag-queries" }, "Queries")),
      A.el("td", {}, acknowledgeForm(flag)));
  }

  async function load() {
    const card = A.$("#flags-card");
    if (!card) return;
    try {
      const { flags } = await A.api("/api/v1/admin/flags?open=true&limit=100");
      A.$("#flags-table tbody").replaceChildren(...flags.map(row));
      if (flags.length === 0) return showEmpty("No open flags.");
      A.$("#flags-wrap").hidden = false;
      A.$("#flags-empty").hidden = true;
    } catch (error) {
      showEmpty(`Flags could not be loaded: ${error.message}`);
    }
  }

  document.addEventListener("DOMContentLoaded", load);
})();
