// Live campaign (group-buy) pages, loaded after lot.js. lot.js already ticks the
// countdown (`.lot-end`) from the server clock, reconnects the websocket after any
// close, keeps regions from going back to an older data-seq and lets htmx swap
// error answers. This file adds what is specific to campaigns: the pledge form is
// disabled while the socket is down (pledges go over HTTP only, so nothing typed
// offline is sent later), and the "you will pay at most" line follows the units typed.
(function () {
  "use strict";

  function setConnected(article, connected) {
    var campaignId = article.dataset.campaignId;
    var fieldset = document.getElementById("campaign-" + campaignId + "-pledge-fieldset");
    var status = document.getElementById("campaign-" + campaignId + "-connection");
    if (fieldset) fieldset.disabled = !connected;
    if (status) {
      status.dataset.state = connected ? "open" : "offline";
      status.textContent = connected ? "" : status.dataset.offlineText;
    }
  }

  function articleOf(event) {
    return event.target && event.target.closest ? event.target.closest("[data-campaign-id]") : null;
  }

  // -- "you will pay at most" ------------------------------------------------------------

  function formatWon(pattern, amount) {
    var digits = String(amount).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return pattern.replace("#", digits);
  }

  function updateAtMost(input) {
    var campaignId = input.id.replace(/^campaign-/, "").replace(/-units-input$/, "");
    var line = document.getElementById("campaign-" + campaignId + "-pay-at-most");
    if (!line) return;
    if (!line.dataset.defaultText) line.dataset.defaultText = line.textContent.trim();
    var text = input.value.trim();
    // Plain ASCII digits only, as the server accepts them.
    if (!/^[0-9]{1,6}$/.test(text) || Number(text) === 0) {
      line.textContent = line.dataset.defaultText;
      return;
    }
    var units = Number(text);
    var amount = units * Number(line.dataset.atMostWon);
    line.textContent = line.dataset.unitsTemplate
      .replace("{units}", units.toLocaleString("en-US"))
      .replace("{amount}", formatWon(line.dataset.wonPattern, amount));
  }

  function onInput(event) {
    var input = event.target;
    if (input && input.id && /^campaign-\d+-units-input$/.test(input.id)) updateAtMost(input);
  }

  function onAfterRequest(event) {
    var form = event.target;
    if (!form || !form.classList || !form.classList.contains("pledge-form")) return;
    if (event.detail.successful) {
      var units = form.querySelector("input[name='units']");
      if (units) {
        units.value = "";
        updateAtMost(units);
      }
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-campaign-id]").forEach(function (article) {
      setConnected(article, false);
      var status = document.getElementById("campaign-" + article.dataset.campaignId + "-connection");
      if (status) status.textContent = status.dataset.connectingText;
    });
  });
  document.addEventListener("htmx:wsOpen", function (event) {
    var article = articleOf(event);
    if (article) setConnected(article, true);
  });
  document.addEventListener("htmx:wsClose", function (event) {
    var article = articleOf(event);
    if (article) setConnected(article, false);
  });
  document.addEventListener("input", onInput);
  document.addEventListener("htmx:afterRequest", onAfterRequest);
})();
