// msggate console: the only script. Destructive forms ask before they post; without script
// the server shows its own confirmation page instead.
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  var message = form.getAttribute("data-confirm");
  if (!message) {
    return;
  }
  if (!window.confirm(message)) {
    event.preventDefault();
    return;
  }
  var flag = form.querySelector("input[name=confirmed]");
  if (flag) {
    flag.value = "1";
  }
});
