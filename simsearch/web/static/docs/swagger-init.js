// Starts Swagger UI on /api/docs (a file, not an inline script: the page's CSP allows only
// scripts from this origin). Browser writes need the session's CSRF token (simsearch.web.security):
// "Try it out" sends it in the X-CSRF-Token header, read from the page's meta tag.
(function () {
  'use strict';
  var root = document.getElementById('swagger-ui');
  var meta = document.querySelector('meta[name="csrf-token"]');
  var SAFE = { GET: true, HEAD: true, OPTIONS: true };
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    dom_id: '#swagger-ui',
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
    validatorUrl: null,  // the default sends the document to swagger.io
    tryItOutEnabled: false,
    displayRequestDuration: true,
    requestInterceptor: function (req) {
      if (meta && !SAFE[(req.method || 'GET').toUpperCase()]) req.headers['X-CSRF-Token'] = meta.content;
      return req;
    },
  });
}());
