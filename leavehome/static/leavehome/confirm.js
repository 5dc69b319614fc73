// Forms (or their submit buttons) with data-confirm ask before they submit. A file, not an
// onsubmit or onclick attribute: the Content-Security-Policy runs no inline script, handlers
// included.
document.addEventListener("submit", function (event) {
  var holder = [event.submitter, event.target].find(function (element) {
    return element && element.dataset && element.dataset.confirm;
  });
  if (holder && !window.confirm(holder.dataset.confirm)) event.preventDefault();
});
