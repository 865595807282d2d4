/* Admin additions, as a static file so the Content-Security-Policy needs no inline script:
 * a button with data-confirm asks before it submits (ending a campaign hangs up its live calls). */
(function () {
  "use strict";
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
  });
})();
