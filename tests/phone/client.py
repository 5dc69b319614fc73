"""The phone: keeps visits, derives their tokens, uploads, polls, and matches the feed locally."""

import datetime as dt
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import httpx

from tests.phone.codes import VenueCode, verify_venue_code
from tests.phone.derivation import b64u_encode, visit_tokens

API = "/api/v1"


class ApiError(Exception):
    """A non-2xx answer; ``body`` is the decoded error document."""

    def __init__(self, response: httpx.Response):
        self.status = response.status_code
        self.headers = response.headers
        try:
            self.body = response.json()
        except ValueError:
            self.body = None
        super().__init__(f"{self.status}: {self.body}")


@dataclass(frozen=True)
class Visit:
    code: VenueCode
    t_in: int
    t_out: int


class Phone:
    """One app installation. ``clock`` returns Unix seconds (tests pin it)."""

    def __init__(self, http: httpx.Client, *, clock=time.time):
        self.http = http
        self.clock = clock
        self.config: dict | None = None
        self.device_id: str | None = None
        self.secret: str | None = None
        self.visits: list[Visit] = []
        self.uploaded: set[tuple[dt.date, bytes]] = set()
        self.notifications: dict[int, dict] = {}
        self.notifications_cursor: str | None = None
        self.feed: dict[tuple[str, str], dict] = {}
        self.feed_next: int | None = None
        self.documents: dict[str, tuple[str | None, dict]] = {}  # path → (ETag, body)

    # --- HTTP ------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, auth: bool = True, **kwargs) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if auth:
            headers["Authorization"] = f"Bearer {self.secret}"
        response = self.http.request(method, API + path, headers=headers, **kwargs)
        if response.status_code >= 400:
            raise ApiError(response)
        return response

    def fetch_config(self) -> dict:
        self.config = self._call("GET", "/config", auth=False).json()
        return self.config

    def register(self) -> str:
        if self.config is None:
            self.fetch_config()
        answer = self._call("POST", "/devices", auth=False, json={})
        body = answer.json()
        self.device_id, self.secret = body["device_id"], body["token"]
        return self.device_id

    # --- Codes and visits ------------------------------------------------------------------

    def scan(self, text: str) -> VenueCode:
        """Verify a QR text against the published keys and revocations."""
        if self.config is None:
            self.fetch_config()
        prefix = self.config["venue_code_prefix"]
        jwks = self._cached_get("/.well-known/jwks.json")
        revocations = self._cached_get("/api/v1/revocations")
        issuer = prefix[: -len("/c/#")]
        return verify_venue_code(text, prefix=prefix, issuer=issuer, jwks=jwks, revocations=revocations)

    def _cached_get(self, path: str) -> dict:
        """A public document, revalidated with its ETag (an unchanged one answers 304)."""
        etag, body = self.documents.get(path, (None, None))
        response = self.http.get(path, headers={"If-None-Match": etag} if etag else {})
        if response.status_code == 304 and body is not None:
            return body
        if response.status_code >= 400:
            raise ApiError(response)
        body = response.json()
        self.documents[path] = (response.headers.get("ETag"), body)
        return body

    def check_in(self, code: VenueCode, t_in: int, t_out: int | None = None) -> Visit:
        """Record a visit; an open visit closes after default_visit_seconds, none exceeds max_visit_seconds."""
        if t_out is None:
            t_out = t_in + self.config["default_visit_seconds"]
        t_out = min(max(t_out, t_in + 1), t_in + self.config["max_visit_seconds"])
        visit = Visit(code=code, t_in=t_in, t_out=t_out)
        self.visits.append(visit)
        return visit

    def tokens_by_date(self) -> dict[dt.date, set[bytes]]:
        days: dict[dt.date, set[bytes]] = {}
        for visit in self.visits:
            for date, tokens in visit_tokens(visit.code.vk, visit.t_in, visit.t_out, self.config["time_zone"]).items():
                days.setdefault(date, set()).update(tokens)
        return days

    # --- Upload and poll -------------------------------------------------------------------

    def upload(self) -> int:
        """Upload the retained visits' tokens not uploaded yet, in requests of at most max_tokens_per_upload."""
        zone_today = dt.datetime.fromtimestamp(self.clock(), ZoneInfo(self.config["time_zone"])).date()
        oldest = zone_today - dt.timedelta(days=self.config["retention_days"])
        flat = [
            (date, token)
            for date, tokens in sorted(self.tokens_by_date().items())
            if oldest <= date <= zone_today + dt.timedelta(days=1)
            for token in sorted(tokens)
            if (date, token) not in self.uploaded
        ]
        limit = self.config["max_tokens_per_upload"]
        accepted = 0
        for start in range(0, len(flat), limit):
            days: dict[str, list[str]] = {}
            for date, token in flat[start : start + limit]:
                days.setdefault(date.isoformat(), []).append(b64u_encode(token))
            body = {"days": [{"date": date, "tokens": tokens} for date, tokens in days.items()]}
            accepted += self._call("POST", "/visits", json=body).json()["accepted"]
            self.uploaded.update(flat[start : start + limit])
        return accepted

    def upload_as_case(self, code: str) -> int:
        """As a confirmed case, send the retained visits with the officials' one-time code.

        Each visit goes as the venue code scanned (even one revoked since: it still proves the
        visit) with its times; the newest ``max_case_upload_visits`` if there are more. No
        device secret: the upload must not name this device.
        """
        now = int(self.clock())
        oldest = now - self.config["retention_days"] * 86400
        kept = sorted((v for v in self.visits if oldest <= v.t_in <= now), key=lambda v: v.t_in)
        kept = kept[-self.config["max_case_upload_visits"] :]
        body = {"code": code, "visits": [{"venue_code": v.code.jws, "t_in": v.t_in, "t_out": v.t_out} for v in kept]}
        return self._call("POST", "/case-uploads", auth=False, json=body).json()["accepted"]

    def poll(self) -> list[dict]:
        """Fetch notifications changed since the last poll; returns them (newest first)."""
        params = {"since": self.notifications_cursor} if self.notifications_cursor else {}
        body = self._call("GET", "/notifications", params=params).json()
        for item in body["items"]:
            self.notifications[item["id"]] = item
        self.notifications_cursor = body["cursor"]
        return body["items"]

    @staticmethod
    def shown(item: dict, language: str) -> dict:
        """What the app shows for a notification in ``language`` (``en`` or ``zh``, PROTOCOL §7):
        the advice first, the case's own message after it when it says something else, and
        the test dates as dates to put in a calendar."""
        lines = [item["advice"][language]]
        if item["message"][language] != item["advice"][language]:
            lines.append(item["message"][language])
        return {
            "lines": lines,
            "test_dates": [dt.date.fromisoformat(day) for day in item["test_dates"]],
            "cancelled": item["status"] == "withdrawn",
        }

    def set_push(self, channel: dict) -> None:
        self._call("PUT", "/devices/me/push", json=channel)

    def clear_push(self) -> None:
        self._call("DELETE", "/devices/me/push")

    def delete(self) -> None:
        self._call("DELETE", "/devices/me")

    # --- Matching on the phone -------------------------------------------------------------

    def sync_feed(self) -> int:
        """Read the exposure feed from where the last sync stopped; returns pages read."""
        pages = 0
        while True:
            params = {} if self.feed_next is None else {"page": self.feed_next}
            body = self._call("GET", "/exposures", auth=False, params=params).json()
            pages += 1
            for item in body["items"]:
                self.feed[(item["date"], item["t"])] = item  # the latest line wins
            self.feed_next = body["next"]
            if not body["closed"]:
                return pages

    def local_matches(self) -> dict[tuple[str, str], str]:
        """(date, token) of my visits that the feed lists as active, with their risk."""
        matches = {}
        for date, tokens in self.tokens_by_date().items():
            for token in tokens:
                item = self.feed.get((date.isoformat(), b64u_encode(token)))
                if item and item["status"] == "active":
                    matches[(item["date"], item["t"])] = item["risk"]
        return matches
