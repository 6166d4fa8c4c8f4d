// Starts Swagger UI on /docs from the vendored bundle (a file, because the CSP forbids inline script).
(function () {
  "use strict";
  window.addEventListener("DOMContentLoaded", function () {
    window.SwaggerUIBundle({
      url: "/openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      presets: [window.SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
    });
  });
})();
