// The landing page of a scanned poster: show the venue's name from the URL fragment, but only
// once the code's Ed25519 signature verifies against the site's published key set. Anyone can
// write a code naming any venue; an unverified name on the official site would lend it our
// authority. Browsers without WebCrypto Ed25519 show no name. The fragment (the signed code)
// never leaves the phone: only the key set is fetched.
//
// When the check is over, <html data-code-check> is "valid" or "invalid" (for tests).
(function () {
  "use strict";

  function b64uBytes(text) {
    if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new Error("not base64url");
    var binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  function b64uJson(text) {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(b64uBytes(text)));
  }

  function done(result) {
    document.documentElement.setAttribute("data-code-check", result);
  }

  async function verifiedClaims(jws) {
    var parts = jws.split(".");
    if (parts.length !== 3) throw new Error("not a JWS");
    var header = b64uJson(parts[0]);
    if (header.alg !== "EdDSA" || header.typ !== "lhs-venue+jwt") throw new Error("wrong alg or typ");
    var answer = await fetch("/.well-known/jwks.json", { credentials: "omit" });
    if (!answer.ok) throw new Error("no key set");
    var jwk = (await answer.json()).keys.find(function (key) {
      return key.kid === header.kid && key.kty === "OKP" && key.crv === "Ed25519";
    });
    if (!jwk) throw new Error("unknown key");
    var key = await crypto.subtle.importKey(
      "jwk", { kty: "OKP", crv: "Ed25519", x: jwk.x }, { name: "Ed25519" }, false, ["verify"]
    );
    var signed = new TextEncoder().encode(parts[0] + "." + parts[1]);
    var valid = await crypto.subtle.verify({ name: "Ed25519" }, key, b64uBytes(parts[2]), signed);
    if (!valid) throw new Error("bad signature");
    return b64uJson(parts[1]);
  }

  async function show() {
    var el = document.getElementById("venue-name");
    el.hidden = true;
    el.textContent = "";
    document.documentElement.removeAttribute("data-code-check");
    var jws = location.hash.slice(1);
    if (!jws || !window.crypto || !crypto.subtle) return done("invalid");
    try {
      var claims = await verifiedClaims(jws);
      if (location.hash.slice(1) !== jws) return; // another code arrived meanwhile
      el.textContent = claims.name.zh + " · " + claims.name.en;
      el.hidden = false;
      done("valid");
    } catch (e) {
      done("invalid"); // forged, malformed, or a browser without Ed25519: no name, the page explains the app
    }
  }

  // A second scan in the same tab changes only the fragment: check that code too.
  window.addEventListener("hashchange", show);
  show();
})();
