// Starts Swagger UI on /docs. A file of its own, not an inline script: the page runs under the same
// Content-Security-Policy as the console (script-src 'self').
"use strict";
(() => {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    presets: [SwaggerUIBundle.presets.apis],
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // No badge fetched from the public validator: the page makes no request off this site.
    validatorUrl: null,
  });
})();
