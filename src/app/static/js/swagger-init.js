/* Starts the self-hosted Swagger UI without an inline script (CSP script-src 'self').
   The page needs: <div id="swagger-container" data-spec-url="/schema/openapi.json"></div>,
   then vendor/swagger-ui-bundle.js, vendor/swagger-ui-standalone-preset.js and this file.
   Browser "try it out" calls with the session cookie carry the CSRF header. */
(function () {
  "use strict";
  function cookie(name) {
    var match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : undefined;
  }
  function start() {
    var el = document.getElementById("swagger-container");
    if (!el || typeof SwaggerUIBundle === "undefined") return;
    SwaggerUIBundle({
      url: el.getAttribute("data-spec-url") || "/schema/openapi.json",
      dom_id: "#swagger-container",
      deepLinking: true,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      layout: "BaseLayout",
      requestInterceptor: function (req) {
        var token = cookie("momentum_csrf");
        if (token) req.headers["X-CSRFToken"] = token;
        return req;
      }
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
