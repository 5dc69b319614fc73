// The landing page of a scanned poster: show the venue's name from the URL fragment.
// The fragment (the signed code) never leaves the phone; the name shown is unverified,
// the app checks the signature when the poster is scanned in it.
(function () {
  try {
    var payload = location.hash.slice(1).split(".")[1];
    var json = decodeURIComponent(escape(atob(payload.replace(/-/g, "+").replace(/_/g, "/"))));
    var claims = JSON.parse(json);
    var el = document.getElementById("venue-name");
    el.textContent = claims.name.zh + " · " + claims.name.en;
    el.hidden = false;
  } catch (e) { /* no or malformed code: the page explains the app all the same */ }
})();
