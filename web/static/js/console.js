// The staff console: show the websocket connection state (lot.js ticks the countdowns
// and reconnects after any close).
(function () {
  "use strict";

  function setState(connected) {
    var status = document.getElementById("staff-connection");
    if (!status) return;
    status.dataset.state = connected ? "open" : "offline";
    status.textContent = connected ? "" : status.dataset.offlineText;
  }

  document.addEventListener("htmx:wsOpen", function (event) {
    if (event.target.id === "staff-console") setState(true);
  });
  document.addEventListener("htmx:wsClose", function (event) {
    if (event.target.id === "staff-console") setState(false);
  });
})();
