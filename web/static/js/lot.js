// Live lot pages: the countdown, the websocket connection state and bid answers.
//
// The countdown uses the server's clock: each fragment with an end time carries
// data-server-ms (Redis time when it was made), and the offset between that and the
// browser's clock at receipt corrects every tick.
(function () {
  "use strict";

  // The htmx ws extension reconnects by itself after these close codes only.
  var EXTENSION_RECONNECTS = [1006, 1011, 1012, 1013];
  var MAX_RECONNECT_DELAY_MS = 30000;
  var offsetMs = 0;
  var reconnectAttempts = 0;

  // Answers to bids come with 4xx/5xx codes and a message to show, so swap them too.
  function configureHtmx() {
    if (!window.htmx) return;
    htmx.config.responseHandling = [
      { code: "204", swap: false },
      { code: "[23]..", swap: true },
      { code: "401", swap: false, error: true },
      { code: "[45]..", swap: true, error: true }
    ];
  }

  // -- countdown --------------------------------------------------------------------

  function syncClock(root) {
    var elements = (root || document).querySelectorAll("[data-server-ms]:not([data-synced])");
    elements.forEach(function (element) {
      offsetMs = Number(element.dataset.serverMs) - Date.now();
      element.setAttribute("data-synced", "1");
    });
  }

  function pad(number) {
    return number < 10 ? "0" + number : String(number);
  }

  function formatLeft(ms) {
    var seconds = Math.max(0, Math.floor(ms / 1000));
    var days = Math.floor(seconds / 86400);
    var hours = Math.floor((seconds % 86400) / 3600);
    var minutes = Math.floor((seconds % 3600) / 60);
    var text = pad(hours) + ":" + pad(minutes) + ":" + pad(seconds % 60);
    return days > 0 ? days + "d " + text : text;
  }

  function tick() {
    var now = Date.now() + offsetMs;
    document.querySelectorAll(".lot-end[data-end-ms]").forEach(function (element) {
      var left = element.querySelector(".lot-end__left");
      if (!left) return;
      var status = element.dataset.status;
      var endMs = Number(element.dataset.endMs);
      var startMs = Number(element.dataset.startMs);
      var text;
      if (status !== "open" && status !== "scheduled") {
        showEnded(element, left);
        return;
      } else if (now < startMs) {
        text = element.dataset.startsText + " " + formatLeft(startMs - now);
      } else if (now >= endMs) {
        showEnded(element, left);
        return;
      } else {
        text = formatLeft(endMs - now);
      }
      if (left.textContent !== text) left.textContent = text;
    });
  }

  // An ended lot shows only "Ended: <time>", not a countdown next to the end time.
  function showEnded(element, left) {
    var at = element.querySelector(".lot-end__at");
    if (left.textContent !== "") left.textContent = "";
    if (at && at.textContent !== element.dataset.endedText) at.textContent = element.dataset.endedText;
  }

  // -- connection state ----------------------------------------------------------------

  function setConnected(article, connected) {
    var lotId = article.dataset.lotId;
    var fieldset = document.getElementById("lot-" + lotId + "-bid-fieldset");
    var status = document.getElementById("lot-" + lotId + "-connection");
    if (fieldset) fieldset.disabled = !connected;
    if (status) {
      status.dataset.state = connected ? "open" : "offline";
      status.textContent = connected ? "" : status.dataset.offlineText;
    }
  }

  function onOpen(event) {
    reconnectAttempts = 0;
    var article = event.target.closest("[data-lot-id]");
    if (article) setConnected(article, true);
  }

  function onClose(event) {
    var article = event.target.closest("[data-lot-id]");
    if (article) setConnected(article, false);
    var code = event.detail && event.detail.event ? event.detail.event.code : 1006;
    var wrapper = event.detail && event.detail.socketWrapper;
    // Reconnect after every close, not only after the codes the extension handles.
    if (EXTENSION_RECONNECTS.indexOf(code) === -1 && wrapper && document.body.contains(event.target)) {
      reconnectAttempts += 1;
      var ceiling = Math.min(MAX_RECONNECT_DELAY_MS, 1000 * Math.pow(2, Math.min(reconnectAttempts, 5)));
      setTimeout(function () { wrapper.reconnect(); }, Math.random() * ceiling);
    }
  }

  // -- ordering ------------------------------------------------------------------------

  // A bid's HTTP answer and the websocket can arrive in either order: never let a
  // region go back to an older sequence number than the one it shows.
  function keepNewest(event) {
    var target = event.detail.target;
    var incoming = event.detail.fragment && event.detail.fragment.firstElementChild;
    if (!target || !incoming || !target.dataset) return;
    var shown = Number(target.dataset.seq);
    var arriving = incoming.dataset ? Number(incoming.dataset.seq) : NaN;
    if (!isNaN(shown) && !isNaN(arriving) && arriving < shown) {
      event.detail.shouldSwap = false;
    }
  }

  // -- the bid field and the bid result ----------------------------------------------

  // People type amounts as the page shows them ("12,500"). Send plain digits; the
  // server still rejects anything else, so this only spares the user an error.
  function cleanAmount(event) {
    var form = event.detail.elt;
    if (!form || !form.classList || !form.classList.contains("bid-form")) return;
    var field = form.querySelector("input[name='amount_won']");
    if (!field) return;
    var cleaned = field.value.replace(/[,\s]/g, "");
    field.value = cleaned;
    event.detail.parameters.amount_won = cleaned;
  }

  // A bid's result ("you are the highest bidder at ...") describes the lot at its
  // receipt's sequence number. Once a private notice arrives for a later state, the
  // notice is the current word, so the older result goes.
  function dropStaleResult(lotId) {
    var result = document.getElementById("lot-" + lotId + "-result");
    var price = document.getElementById("lot-" + lotId + "-price");
    if (!result || !price) return;
    var accepted = result.querySelector(".bid-result--accepted[data-seq]");
    if (!accepted) return;
    var shownSeq = Number(price.dataset.seq);
    if (!isNaN(shownSeq) && shownSeq > Number(accepted.dataset.seq)) result.textContent = "";
  }

  function onNoticeSwap(event) {
    var target = event.detail && event.detail.target;
    if (!target || !target.id) return;
    var match = /^lot-(\d+)-notice$/.exec(target.id);
    if (match && target.textContent.trim() !== "") dropStaleResult(match[1]);
  }

  function onAfterRequest(event) {
    var form = event.target;
    if (!form || !form.classList || !form.classList.contains("bid-form")) return;
    if (event.detail.successful) {
      var amount = form.querySelector("input[name='amount_won']");
      if (amount) amount.value = "";
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    configureHtmx();
    document.querySelectorAll("[data-lot-id]").forEach(function (article) {
      setConnected(article, false);
      var status = document.getElementById("lot-" + article.dataset.lotId + "-connection");
      if (status) status.textContent = status.dataset.connectingText;
    });
    syncClock(document);
    tick();
    setInterval(tick, 1000);
  });
  document.addEventListener("htmx:wsOpen", onOpen);
  document.addEventListener("htmx:wsClose", onClose);
  document.addEventListener("htmx:oobBeforeSwap", keepNewest);
  document.addEventListener("htmx:wsAfterMessage", function () { syncClock(document); tick(); });
  document.addEventListener("htmx:afterSwap", function () { syncClock(document); tick(); });
  document.addEventListener("htmx:afterRequest", onAfterRequest);
  document.addEventListener("htmx:configRequest", cleanAmount);
  document.addEventListener("htmx:oobAfterSwap", onNoticeSwap);
})();
