// The coordinator's live roster: rows arrive over the websocket (htmx ws extension).
(function () {
  "use strict";

  // A join pushed while the page was reading its first snapshot can add a row that the
  // snapshot already holds; keep only the newest element with each id.
  function dropDuplicateRows() {
    var seen = {};
    var rows = document.querySelectorAll(".roster > li[id]");
    for (var index = rows.length - 1; index >= 0; index -= 1) {
      var row = rows[index];
      if (seen[row.id]) {
        row.remove();
      } else {
        seen[row.id] = true;
      }
    }
  }

  document.addEventListener("htmx:wsAfterMessage", dropDuplicateRows);
})();
