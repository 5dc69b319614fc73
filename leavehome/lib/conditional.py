"""Conditional GET for the public JSON documents: a strong ETag from the body, and 304 on a match."""

import hashlib
import json


def json_etag(document) -> str:
    """A strong ETag that changes exactly when the JSON document does."""
    body = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(request, etag: str) -> bool:
    """Whether the request's If-None-Match names ``etag`` (or ``*``).

    Weak comparison (RFC 9110 §13.1.2): a proxy that compresses the body marks it ``W/``.
    """
    sent = {tag.strip().removeprefix("W/") for tag in request.headers.get("If-None-Match", "").split(",")}
    return etag in sent or "*" in sent
