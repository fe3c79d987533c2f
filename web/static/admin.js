// IT administration: show "applying…" while the configuration is applied (no inline scripts: CSP).
(function () {
  "use strict";
  var form = document.getElementById("apply-form");
  if (!form) return;
  form.addEventListener("submit", function () {
    var button = document.getElementById("apply-button");
    var progress = document.getElementById("apply-progress");
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    progress.textContent = form.getAttribute("data-busy");
  });
})();
