"""A confirmed case uploads their own visit history with a one-time code (PROTOCOL §6).

An official issues a code on the case's admin page; the case's phone sends it with the visits
it kept (each the venue code's JWS as scanned, with ``t_in`` and ``t_out``). Every visit is
verified the way a phone verifies a code, and more: the signature under a published key, and
the code's ``vk`` equal to the server's key of that ``(sub, ver)``, so a forged or altered code
cannot put a venue into a case. A code revoked since by regeneration still proves a past
visit. The upload is all or nothing, and becomes *proposed* case visits that publication
leaves out until an official accepts them (notifications/cases.py).

Single use under concurrency: the upload locks the code's row (``SELECT … FOR UPDATE``) and
marks it used in the same transaction that writes the visits. A second upload with the same
code waits for the lock, then finds the row used: exactly one succeeds. A rejected upload
rolls back, so its code stays unused.

Services here are one transaction each and audit themselves in it.
"""

import datetime as dt
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext as _

from leavehome.audit import audit_record
from leavehome.errors import ServiceError
from notifications.cases import CaseStateError
from notifications.models import Case, CaseUploadCode, CaseVisit

# Crockford base32: 0-9 A-Z without I L O U (PROTOCOL §6). Ten characters are 50 bits.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 10
_READ_AS = str.maketrans({"I": "1", "L": "1", "O": "0"})
_CODE_RE = re.compile(f"[{CODE_ALPHABET}]{{{CODE_LENGTH}}}")


class UploadCodeNotFound(ServiceError):
    """The code is unknown, expired, used or revoked, or its case takes no visits: all alike."""

    code = "code_not_found"
    status = 404

    def __init__(self, message="No such upload code: it is wrong, expired, used or revoked."):
        super().__init__(message)


class VisitRejected(ServiceError):
    """One visit of an upload failed a check; the whole upload is refused."""

    code = "visit_rejected"

    def __init__(self, index: int, field: str, reason: str, message: str):
        super().__init__(message, code=reason)
        self.index, self.field, self.reason = index, field, reason


def upload_code_normalize(text: str) -> str | None:
    """The code as stored, from what a person typed: hyphen optional, any case, I L → 1, O → 0."""
    if not isinstance(text, str):
        return None
    code = text.strip().replace("-", "").upper().translate(_READ_AS)
    return code if _CODE_RE.fullmatch(code) else None


def upload_code_display(code: str) -> str:
    """``XXXXX-XXXXX``, as the official reads it to the case."""
    return f"{code[:5]}-{code[5:]}"


def _code_hash(code: str) -> bytes:
    # Keyed, so a copy of the database alone cannot brute-force 50-bit codes.
    return salted_hmac("leavehome.case_upload_code", code, algorithm="sha256").digest()


def upload_code_live(upload_code: CaseUploadCode, *, now=None) -> bool:
    """Whether the code can still be used: not used, not revoked, not expired."""
    now = now or timezone.now()
    return upload_code.used_at is None and upload_code.revoked_at is None and upload_code.expires_at > now


def case_upload_code_issue(*, case: Case, actor) -> tuple[CaseUploadCode, str]:
    """Issue a one-time upload code for a draft case; returns the row and the code, shown once.

    Earlier live codes of the case are revoked, so the case holds at most one. Only a keyed
    hash of the code is stored.
    """
    with transaction.atomic():
        case = Case.objects.select_for_update().get(pk=case.pk)
        if case.status != Case.Status.DRAFT:
            raise CaseStateError(_("Upload codes can be issued for a draft case only."))
        now = timezone.now()
        revoked = CaseUploadCode.objects.filter(
            case=case, used_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now
        ).update(revoked_at=now)
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        upload_code = CaseUploadCode.objects.create(
            case=case,
            code_hash=_code_hash(code),
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
            expires_at=now + dt.timedelta(hours=settings.LEAVEHOME_CASE_UPLOAD_CODE_HOURS),
        )
        audit_record(
            actor=actor,
            action="case_upload_code.issue",
            obj=upload_code,
            case=case.pk,
            expires_at=upload_code.expires_at.isoformat(),
            revoked_earlier=revoked,
        )
    return upload_code, upload_code_display(code)


def case_upload_code_revoke(*, upload_code: CaseUploadCode, actor) -> CaseUploadCode:
    """Revoke a live code; raises CaseStateError if it was used, revoked or has expired."""
    with transaction.atomic():
        upload_code = CaseUploadCode.objects.select_for_update().get(pk=upload_code.pk)
        if not upload_code_live(upload_code):
            raise CaseStateError(_("This code can no longer be used: there is nothing to revoke."))
        upload_code.revoked_at = timezone.now()
        upload_code.save(update_fields=["revoked_at"])
        audit_record(actor=actor, action="case_upload_code.revoke", obj=upload_code, case=upload_code.case_id)
    return upload_code


@dataclass(frozen=True)
class _Checked:
    """A visit that passed the checks needing no database: its claims, times, and the code version to compare."""

    venue_id: uuid.UUID
    version: int
    vk: bytes
    t_in: int
    t_out: int


def _visit_precheck(index: int, visit: dict, *, public_keys, now: int) -> _Checked:
    """The checks of one visit that need no venue code row (PROTOCOL §6), in the order a reader expects."""
    from venues.signing import InvalidCode, b64u_decode, jws_verify

    t_in, t_out = visit["t_in"], visit["t_out"]
    retention = settings.LEAVEHOME_RETENTION_DAYS * 86400
    if not now - retention <= t_in <= now:
        days = settings.LEAVEHOME_RETENTION_DAYS
        raise VisitRejected(index, "t_in", "outside_retention", f"t_in must be within the last {days} days.")
    if t_out <= t_in:
        raise VisitRejected(index, "t_out", "bad_times", "t_out must be after t_in.")
    if t_out - t_in > settings.LEAVEHOME_MAX_VISIT_SECONDS:
        raise VisitRejected(
            index, "t_out", "too_long", f"A visit lasts at most {settings.LEAVEHOME_MAX_VISIT_SECONDS} seconds."
        )
    try:
        claims = jws_verify(visit["venue_code"], public_keys=public_keys)
    except InvalidCode as error:
        reason = {"unknown signing key": "unknown_key", "bad signature": "bad_signature"}.get(
            str(error), "malformed_venue_code"
        )
        raise VisitRejected(index, "venue_code", reason, f"The venue code is not valid: {error}.") from error
    if claims.get("iss") != settings.SITE_URL:
        raise VisitRejected(index, "venue_code", "wrong_issuer", "The venue code is not from this server.")
    sub, ver, vk = claims.get("sub"), claims.get("ver"), claims.get("vk")
    malformed = VisitRejected(index, "venue_code", "malformed_venue_code", "The venue code's claims are malformed.")
    try:
        venue_id = uuid.UUID(sub)
        vk_bytes = b64u_decode(vk)
    except (TypeError, ValueError, AttributeError) as error:
        raise malformed from error
    if type(ver) is not int or ver < 1 or len(vk_bytes) != 16:
        raise malformed
    return _Checked(venue_id=venue_id, version=ver, vk=vk_bytes, t_in=t_in, t_out=t_out)


def _visits_verify(visits: list[dict], *, now: int) -> list[_Checked]:
    """Every visit checked; raises VisitRejected for the first bad one (lowest index)."""
    from venues.keys import public_keys_published
    from venues.keystore import vk_decrypt
    from venues.models import VenueCode

    public_keys = public_keys_published()
    checked: list[_Checked | VisitRejected] = []
    for index, visit in enumerate(visits):
        try:
            checked.append(_visit_precheck(index, visit, public_keys=public_keys, now=now))
        except VisitRejected as rejected:
            checked.append(rejected)
    venue_ids = {item.venue_id for item in checked if isinstance(item, _Checked)}
    codes = {
        (code.venue_id, code.version): code for code in VenueCode.objects.filter(venue_id__in=venue_ids)
    }  # every version: a regenerated code still proves a past visit
    for index, item in enumerate(checked):
        if isinstance(item, VisitRejected):
            raise item
        code = codes.get((item.venue_id, item.version))
        if code is None:
            raise VisitRejected(index, "venue_code", "unknown_venue_code", "No venue has this code version.")
        # Constant time: how much of a guessed vk matches must not show in the answer's timing.
        if not hmac.compare_digest(vk_decrypt(code), item.vk):
            raise VisitRejected(index, "venue_code", "vk_mismatch", "The venue code's key is not this venue's.")
    return checked


def _windows_merged(visits: list[_Checked], *, now: int) -> list[tuple[uuid.UUID, int, int]]:
    """Visits as windows per venue, overlapping or touching ones merged; none ends after ``now``.

    An open visit the phone closed at ``t_in + default_visit_seconds`` may end in the future;
    the case was not there after uploading, and a window ending later could not be published.
    """
    merged: list[tuple[uuid.UUID, int, int]] = []
    for visit in sorted(visits, key=lambda v: (str(v.venue_id), v.t_in)):
        end = max(min(visit.t_out, now), visit.t_in + 1)
        if merged and merged[-1][0] == visit.venue_id and visit.t_in <= merged[-1][2]:
            merged[-1] = (visit.venue_id, merged[-1][1], max(merged[-1][2], end))
        else:
            merged.append((visit.venue_id, visit.t_in, end))
    return merged


def case_upload_receive(*, code: str, visits: list[dict], now: dt.datetime | None = None) -> int:
    """Take a case's upload: verify every visit, add them as proposed case visits, use the code.

    ``visits`` are ``{"venue_code", "t_in", "t_out"}`` with integer times (the API validated
    their shape). Raises UploadCodeNotFound (unknown, expired, used, revoked, or the case is
    no longer a draft) or VisitRejected; then nothing is stored and the code stays as it was.
    Returns the number of visits accepted. The audit entry names the case, not the sender.
    """
    now = now or timezone.now()
    normalized = upload_code_normalize(code)
    with transaction.atomic():
        found = None
        if normalized is not None:
            found = CaseUploadCode.objects.filter(code_hash=_code_hash(normalized)).values_list("pk", "case_id").first()
        if found is None:
            raise UploadCodeNotFound()
        # The case first, then the code, in the order issuing a code takes them (no deadlock). A
        # concurrent upload with the same code waits here, then finds the code used.
        case = Case.objects.select_for_update().get(pk=found[1])
        upload_code = CaseUploadCode.objects.select_for_update().get(pk=found[0])
        if not upload_code_live(upload_code, now=now) or case.status != Case.Status.DRAFT:
            raise UploadCodeNotFound()
        checked = _visits_verify(visits, now=int(now.timestamp()))
        windows = _windows_merged(checked, now=int(now.timestamp()))
        CaseVisit.objects.bulk_create(
            CaseVisit(
                case=case,
                venue_id=venue_id,
                start=dt.datetime.fromtimestamp(start, dt.UTC),
                end=dt.datetime.fromtimestamp(end, dt.UTC),
                source=CaseVisit.Source.UPLOAD,
                review=CaseVisit.Review.PROPOSED,
            )
            for venue_id, start, end in windows
        )
        upload_code.used_at = now
        upload_code.save(update_fields=["used_at"])
        audit_record(
            actor=None,
            action="case_upload_code.consume",
            obj=upload_code,
            case=case.pk,
            visits=len(checked),
            case_visits_proposed=len(windows),
        )
    return len(checked)


def case_visits_accept(*, case: Case, actor) -> int:
    """Accept every proposed visit of a draft case (after the official removed or padded some)."""
    with transaction.atomic():
        case = Case.objects.select_for_update().get(pk=case.pk)
        if case.status != Case.Status.DRAFT:
            raise CaseStateError(_("Visits can be reviewed on a draft case only."))
        accepted = case.visits.filter(review=CaseVisit.Review.PROPOSED).update(review=CaseVisit.Review.ACCEPTED)
        audit_record(actor=actor, action="case.accept_uploaded_visits", obj=case, case_visits=accepted)
    return accepted
