// Forms with data-confirm ask before they submit. A file, not an onsubmit attribute: the
// Content-Security-Policy runs no inline script, handlers included.
document.addEventListener("submit", function (event) {
  var question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});
