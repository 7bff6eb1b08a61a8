// msggate console: the only script. Destructive forms ask before they post; without script
// the server shows its own confirmation page instead. Account forms mark stored secrets as
// required once a destination field changes; the server enforces it either way.
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

// An account form whose destination fields (host, endpoint, TLS ...) change asks for every
// stored secret again; the server refuses the edit otherwise, this only says so earlier.
function destinationChanged(form) {
  var names = form.getAttribute("data-destinations").split(" ");
  return names.some(function (name) {
    var field = name && form.elements.namedItem(name);
    if (!field) {
      return false;
    }
    if (field.type === "checkbox") {
      return field.checked !== field.defaultChecked;
    }
    if (field.tagName === "SELECT") {
      return Array.prototype.some.call(field.options, function (option) {
        return option.selected !== option.defaultSelected;
      });
    }
    return field.value !== field.defaultValue;
  });
}

function markSecretsAgain(event) {
  var form = event.target.form;
  // after the server asked for the secrets again, its own messages stay as they are
  if (!form || !form.hasAttribute("data-destinations") || form.hasAttribute("data-secrets-again")) {
    return;
  }
  var again = destinationChanged(form);
  form.querySelectorAll("[data-secret-kept]").forEach(function (box) {
    var input = box.querySelector("input[type=password], textarea");
    var star = box.querySelector(".req");
    var hint = box.querySelector(".secret-again");
    if (again) {
      input.setAttribute("required", "");
      input.placeholder = "";
    } else {
      input.removeAttribute("required");
      input.placeholder = box.getAttribute("data-kept-placeholder");
    }
    star.hidden = !again;
    hint.hidden = !again;
  });
}

document.addEventListener("input", markSecretsAgain);
document.addEventListener("change", markSecretsAgain);
