// Starts Swagger UI on /docs from the vendored bundle (a file, because the CSP forbids inline script).
(function () {
  "use strict";
  window.addEventListener("DOMContentLoaded", function () {
    var meta = document.querySelector('meta[name="csrf-token"]');
    var csrf = meta ? meta.getAttribute("content") : "";
    window.SwaggerUIBundle({
      url: "/openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      presets: [window.SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
      persistAuthorization: true,
      // Signed in without Authorize: send the session's CSRF token, as the app's pages do.
      // With a Bearer token none is needed, so none is sent (the curl shown stays minimal).
      requestInterceptor: function (request) {
        if (csrf && !request.headers.Authorization && !request.headers["X-CSRF-Token"]) {
          request.headers["X-CSRF-Token"] = csrf;
        }
        return request;
      },
    });
  });
})();
