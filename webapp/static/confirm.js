// Forms that ask before they submit: the question is the form's data-confirm attribute (text,
// never script, so a subject's name in it cannot run as code).
"use strict";
for (const form of document.querySelectorAll("form[data-confirm]")) {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
}
