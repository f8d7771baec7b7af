// Small page helpers. The live lot code lives in its own file (loaded by lot pages).
(function () {
  "use strict";

  // The session's CSRF token, as base.html puts it in <body hx-headers>, for fetch() calls.
  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"] || "";
    } catch (error) {
      return "";
    }
  }

  // Move focus to the first invalid field or form error after a page or fragment loads,
  // so keyboard and screen-reader users land on what needs fixing.
  function focusFirstError(root) {
    var target = root.querySelector("[aria-invalid='true'], .form-error[role='alert']");
    if (target) {
      if (!target.hasAttribute("tabindex") && target.tagName !== "INPUT") {
        target.setAttribute("tabindex", "-1");
      }
      target.focus();
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    focusFirstError(document);
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    focusFirstError(event.target);
  });

  window.jangteo = { csrfToken: csrfToken, focusFirstError: focusFirstError };
})();
