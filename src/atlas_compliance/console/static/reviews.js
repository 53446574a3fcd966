// Atlas Compliance console: the Access reviews tab. Open a review from the report filters, decide items
// (several at once, keyboard-friendly: checkboxes and buttons), sign off. Everything goes through the API.
"use strict";
window.Atlas = window.Atlas || {};
(() => {
  const A = window.Atlas;
  const { $, el } = A;
  const API = "/api/v1/admin/reviews";
  const DAY = /^\d{4}-\d{2}-\d{2}$/;
  const BATCH = 1000;
  const BADGES = { keep: "badge-ok", revoke: "badge-danger", flag: "badge-warn" };

  let current = null; // the review on screen: {campaign, items}

  function showError(message) {
    $("#reviews-error").textContent = message;
    $("#reviews-error").hidden = !message;
  }

  async function loadList() {
    try {
      const { campaigns } = await A.api(API);
      $("#reviews-table tbody").replaceChildren(...campaigns.map((c) => el("tr", { "data-review": c.id },
        el("td", {}, el("a", { href: A.urlFor({ tab: "reviews", review: c.id }), onclick: (e) => {
          if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
          e.preventDefault();
          A.writeUrl({ tab: "reviews", review: c.id });
          openReview(c.id);
        } }, c.title)),
        el("td", { class: "nowrap" }, `${c.periodStart} to ${c.periodEnd}`),
        el("td", {}, statusBadge(c)),
        el("td", { class: "num" }, `${A.fmtInt(c.progress.userDecided)} / ${A.fmtInt(c.progress.userItems)}`),
        el("td", { class: "nowrap" }, c.dueDate))));
      $("#reviews-empty").hidden = campaigns.length > 0;
      $("#reviews-wrap").hidden = campaigns.length === 0;
    } catch (err) {
      showError(err.message);
    }
  }

  function statusBadge(c) {
    if (c.status === "signed_off") return el("span", { class: "badge badge-ok" }, "Signed off");
    if (c.overdue) return el("span", { class: "badge badge-danger" }, "Overdue");
    return el("span", { class: "badge badge-accent" }, "Open");
  }

  function fillFromReport() {
    const r = A.reports.currentState();
    const today = new Date();
    $("#r-from").value = r.from || A.localDate(new Date(today.getFullYear(), today.getMonth() - 3, 1));
    $("#r-to").value = r.to || A.localDate(new Date(today.getFullYear(), today.getMonth(), 0));
    $("#r-role").value = r.role || "";
    $("#r-user").value = r.userId || "";
    $("#r-table").value = r.table || "";
    $("#r-from").dataset.tz = r.tz || A.viewerTz;
  }

  async function submitOpen(event) {
    event.preventDefault();
    showError("");
    const from = $("#r-from").value, to = $("#r-to").value;
    if (!DAY.test(from) || !DAY.test(to)) { showError("Choose the first and the last day of the period."); return; }
    const body = { startDate: from, endDate: to, tz: $("#r-from").dataset.tz || A.viewerTz };
    for (const [key, sel] of [["role", "#r-role"], ["userId", "#r-user"], ["table", "#r-table"], ["title", "#r-title"]]) {
      if ($(sel).value.trim()) body[key] = $(sel).value.trim();
    }
    $("#review-open-status").textContent = "Freezing the population…";
    try {
      const doc = await A.api(API, { method: "POST", body });
      $("#review-open-status").textContent = "";
      A.writeUrl({ tab: "reviews", review: doc.campaign.id });
      render(doc);
      loadList();
    } catch (err) {
      $("#review-open-status").textContent = "";
      showError(err.message);
    }
  }

  async function openReview(id) {
    showError("");
    try {
      render(await A.api(`${API}/${encodeURIComponent(id)}`));
    } catch (err) {
      $("#review-detail").hidden = true;
      showError(err.message);
    }
  }

  function itemRow(i, readOnly, secondReviewer) {
    const f = i.figures, d = i.decision;
    const queries = i.kind === "access" ? f.queryCount : f.totalQueries;
    const who = i.userEmail || i.userId || "No user";
    const pii = (f.piiColumns || []);
    return el("tr", { "data-item": i.item, "data-kind": i.kind, class: i.kind === "access" ? "sub-row" : null },
      el("td", {}, el("input", { type: "checkbox", class: "review-pick", value: i.item, disabled: readOnly,
        "aria-label": `Select item ${i.item}: ${who}${i.tableName ? ` on ${i.tableName}` : ""}` })),
      el("td", { class: "num" }, String(i.item)),
      el("td", { class: "nowrap", title: i.userId ? `User id: ${i.userId}` : null }, who),
      el("td", {}, i.userRole || el("span", { class: "muted" }, "—")),
      el("td", {}, i.tableName ? el("span", { class: "chip" }, i.tableName) : el("span", { class: "muted" }, "All tables")),
      el("td", { class: "num" }, A.fmtInt(queries)),
      el("td", {}, pii.length ? el("div", { class: "chips" }, pii.map((c) => el("span", { class: "chip chip-pii" }, c)))
        : el("span", { class: "muted" }, "—")),
      el("td", { class: "review-decision" }, d ? el("span", { class: `badge ${BADGES[d.decision]}` }, d.decision)
        : el("span", { class: "muted" }, i.kind === "user" ? "Undecided" : "—"),
        secondReviewer && i.kind === "access" && i.hasPII
          ? el("div", { class: "muted" }, i.confirmedByTwo ? "Confirmed by two" : "Needs a second reviewer") : null),
      el("td", {}, d?.note || ""),
      el("td", { class: "nowrap" }, d?.decidedBy?.email || ""));
  }

  function render(doc) {
    current = doc;
    const c = doc.campaign, p = c.progress;
    const readOnly = c.status !== "open";
    $("#review-title").textContent = c.title;
    $("#review-desc").textContent = `${c.periodStart} to ${c.periodEnd} (${c.tz}), due ${c.dueDate}. ` +
      `Opened by ${c.openedBy?.email || "the scheduler"}.`;
    $("#review-progress").textContent = `${A.fmtInt(p.userDecided)} of ${A.fmtInt(p.userItems)} people decided, ` +
      `${A.fmtInt(p.accessDecided)} of ${A.fmtInt(p.accessItems)} table accesses.` + (c.piiSecondReviewer
        ? ` ${A.fmtInt(p.piiConfirmedByTwo)} of ${A.fmtInt(p.piiAccessItems)} PII accesses confirmed by two reviewers.`
        : "");
    $("#review-items tbody").replaceChildren(...doc.items.map((i) => itemRow(i, readOnly, c.piiSecondReviewer)));
    $("#review-signed").textContent = readOnly
      ? `Signed off by ${c.signOff.by.email} at ${c.signOff.at}: “${c.signOff.statement}”` : "";
    $("#review-decide-bar").hidden = readOnly;
    $("#review-signoff").hidden = readOnly;
    const base = `${API}/${encodeURIComponent(c.id)}/export`;
    $("#review-csv").href = `${base}?format=csv`;
    $("#review-json").href = `${base}?format=json`;
    $("#review-detail").hidden = false;
    $("#review-detail").dataset.review = c.id;
    $("#review-detail").dataset.status = c.status;
  }

  const picked = () => [...document.querySelectorAll("#review-items .review-pick:checked")].map((b) => Number(b.value));

  async function decide(decision) {
    $("#review-status").textContent = "";
    showError("");
    const items = picked();
    if (!items.length) { showError("Select at least one item."); return; }
    const note = $("#review-note").value.trim();
    if (decision !== "keep" && !note) { showError("A note is required to revoke or flag."); $("#review-note").focus(); return; }
    try {
      for (let start = 0; start < items.length; start += BATCH) { // the API takes up to 1,000 items a call
        await A.api(`${API}/${encodeURIComponent(current.campaign.id)}/decisions`, { method: "POST",
          body: { items: items.slice(start, start + BATCH), decision, ...(note ? { note } : {}) } });
      }
      $("#review-note").value = "";
      await openReview(current.campaign.id);
      $("#review-status").textContent = `${decision}: ${items.length} item(s)`;
      loadList();
    } catch (err) {
      showError(err.message);
    }
  }

  async function signOff(event) {
    event.preventDefault();
    const statement = $("#signoff-statement").value.trim();
    $("#signoff-error").hidden = true;
    if (!statement) {
      $("#signoff-error").textContent = "Write a statement.";
      $("#signoff-error").hidden = false;
      return;
    }
    try {
      render(await A.api(`${API}/${encodeURIComponent(current.campaign.id)}/signoff`, { method: "POST",
        body: { statement } }));
      $("#signoff-dialog").close();
      loadList();
      $("#review-title").focus();
    } catch (err) {
      $("#signoff-error").textContent = err.message;
      $("#signoff-error").hidden = false;
    }
  }

  function show(state) {
    showError("");
    fillFromReport();
    loadList();
    if (state.review) openReview(state.review);
    else { current = null; $("#review-detail").hidden = true; }
  }

  const currentState = () => (current ? { tab: "reviews", review: current.campaign.id } : { tab: "reviews" });

  function init() {
    $("#review-open-form").addEventListener("submit", submitOpen);
    for (const id of ["#review-keep", "#review-revoke", "#review-flag"]) {
      $(id).addEventListener("click", (e) => decide(e.currentTarget.dataset.decision));
    }
    $("#review-select-undecided").addEventListener("click", () => {
      for (const box of document.querySelectorAll("#review-items tr[data-kind=user] .review-pick")) {
        const item = current.items.find((i) => i.item === Number(box.value));
        box.checked = !item.decision;
      }
    });
    $("#review-signoff").addEventListener("click", () => {
      $("#signoff-error").hidden = true;
      $("#signoff-dialog").showModal();
    });
    $("#signoff-cancel").addEventListener("click", () => $("#signoff-dialog").close());
    $("#signoff-form").addEventListener("submit", signOff);
  }

  A.reviews = { init, show, currentState };
})();
