/* portradar API docs: starts Swagger UI (served by portradar from the swagger-ui-bundle
 * package) on /api/openapi.json.
 *
 * A file rather than the usual inline start-up script, because the CSP forbids inline scripts.
 * validatorUrl: null - Swagger UI would otherwise show a badge loaded from validator.swagger.io
 * (the page must not ask any other host for anything). "Try it out" requests are same-origin
 * fetches, so the browser sends the user's HTTP Basic credentials with them; a token the
 * dashboard was given (this tab's sessionStorage) is sent as a bearer token unless the request
 * already carries credentials (Swagger UI's own "Authorize"). When the description has been
 * rendered <body data-ready="1"> is set (tests wait for it).
 */
(function () {
  "use strict";

  var TOKEN_KEY = "portradar.token";
  var body = document.body;

  function storedToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch (e) {
      return null;
    }
  }

  function hasAuthorization(headers) {
    return Object.keys(headers || {}).some(function (k) {
      return k.toLowerCase() === "authorization";
    });
  }

  if (typeof window.SwaggerUIBundle !== "function") {
    var box = document.getElementById("swagger-ui");
    box.textContent = "Swagger UI did not load; the API's description is " +
      body.dataset.openapi + ".";
    body.setAttribute("data-ready", "error");
    return;
  }

  window.ui = window.SwaggerUIBundle({
    url: body.dataset.openapi,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    layout: "BaseLayout",
    presets: [window.SwaggerUIBundle.presets.apis],
    displayRequestDuration: true,
    defaultModelsExpandDepth: 0,
    requestInterceptor: function (req) {
      var token = storedToken();
      req.headers = req.headers || {};
      if (token && !hasAuthorization(req.headers)) req.headers.Authorization = "Bearer " + token;
      return req;
    },
    onComplete: function () {
      body.setAttribute("data-ready", "1");
    },
  });
})();
