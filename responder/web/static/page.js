// The status page's only script: refresh while visible, and ask before an operator's form
// is sent. Without it the page still reads, and <noscript>'s meta refresh reloads it.
"use strict";
(function () {
  var seconds = Number(document.body.getAttribute("data-refresh"));
  var timer = null;

  function busy() {
    // Never reload under someone typing a reason.
    var active = document.activeElement;
    if (active && active.form) return true;
    var fields = document.querySelectorAll("form.op input[name=reason]");
    for (var i = 0; i < fields.length; i++) if (fields[i].value) return true;
    return false;
  }

  function schedule() {
    clearTimeout(timer);
    if (!seconds || document.hidden) return; // held still (?refresh=off), or the tab is hidden
    timer = setTimeout(function () {
      if (busy()) schedule();
      else window.location.reload();
    }, seconds * 1000);
  }

  document.addEventListener("visibilitychange", schedule);
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });
  schedule();
})();
