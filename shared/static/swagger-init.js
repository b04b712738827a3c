// Starts Swagger UI on /docs (shared/api_docs.py). It is a file of this origin rather than an
// inline <script>, so the page runs under the same CSP as every HTML page (script-src 'self').
// The schema's URL comes from the page: <div id="swagger-ui" data-openapi-url="...">.
"use strict";
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // Never send the schema to the public online validator: the network may have no way out.
    validatorUrl: "none",
    presets: [SwaggerUIBundle.presets.apis],
  });
})();
