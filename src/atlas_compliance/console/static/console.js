// Atlas Compliance console: tabs and routing. The URL is the state: reload, back/forward and a pasted
// link show the same tab and the same report.
"use strict";
(() => {
  const A = window.Atlas;
  const TABS = ["classifications", "reports", "events", "reviews"];
  const TITLES = { classifications: "PII Classifications", reports: "Reports", events: "Audit events",
    reviews: "Access reviews" };

  function showTab(tab) {
    for (const name of TABS) {
      document.getElementById(`panel-${name}`).hidden = name !== tab;
      const link = document.getElementById(`tab-${name}`);
      if (name === tab) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    document.title = `${TITLES[tab]} · Compliance · Atlas Compliance`;
  }

  function route() {
    const state = A.readUrl();
    showTab(state.tab);
    if (state.tab === "classifications") A.classifications.load();
    else if (state.tab === "events") A.events.show(state);
    else if (state.tab === "reviews") A.reviews.show(state);
    else A.reports.show(state);
  }

  for (const name of TABS) {
    document.getElementById(`tab-${name}`).addEventListener("click", (event) => {
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return; // new tab/window
      event.preventDefault();
      // Coming back to Reports restores the report generated earlier on this page.
      const states = { reports: A.reports.currentState, events: A.events.currentState,
        reviews: A.reviews.currentState };
      A.writeUrl(states[name] ? states[name]() : { tab: name });
      route();
    });
  }
  window.addEventListener("popstate", route);

  A.classifications.init();
  A.activity.init();
  A.reports.init();
  A.events.init();
  A.reviews.init();
  route();
})();
