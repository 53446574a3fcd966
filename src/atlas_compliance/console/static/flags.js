// Atlas Compliance console: the open unusual-access flags on the Reports tab (docs/flags.md), each with a link
// to the recorded queries behind it in the Audit events tab.
"use strict";
(() => {
  const A = window.Atlas;
  const RULES = { volume: "Volume", first_access: "First access", new_actor: "New actor",
                  bulk_export: "Bulk export", off_hours: "Off hours" };

  function row(flag) {
    const queries = A.urlFor({ tab: "events", from: flag.day, to: flag.day, tz: "UTC", userId: flag.userId,
                               table: flag.tableName });
    return A.el("tr", { "data-flag": flag.id, "data-rule": flag.rule },
      A.el("td", { text: A.fmtDay(flag.day) }),
      A.el("td", { text: RULES[flag.rule] || flag.rule }),
      A.el("td", { class: "mono", text: flag.userId }),
      A.el("td", { class: "mono", text: flag.tableName }),
      A.el("td", { text: flag.explanation }),
      A.el("td", {}, A.el("a", { href: queries, class: "flag-queries" }, "Queries")));
  }

  async function load() {
    const card = A.$("#flags-card");
    if (!card) return;
    const empty = A.$("#flags-empty"), wrap = A.$("#flags-wrap");
    try {
      const { flags } = await A.api("/api/v1/admin/flags?open=true&limit=100");
      A.$("#flags-table tbody").replaceChildren(...flags.map(row));
      wrap.hidden = flags.length === 0;
      empty.hidden = flags.length > 0;
      empty.textContent = "No open flags.";
    } catch (error) {
      wrap.hidden = true;
      empty.hidden = false;
      empty.textContent = `Flags could not be loaded: ${error.message}`;
    }
  }

  document.addEventListener("DOMContentLoaded", load);
})();
