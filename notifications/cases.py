"""Cases: publication, withdrawal and the CSV import of case visits (services for the admin).

Each service is one transaction, recorded in the audit trail in that transaction. A
publication writes the matching it calls for to the publication backlog in its own
transaction and returns it; its caller queues that work on commit only
(notifications/tasks.py; notifications/matching.py explains why that order is what makes an
upload racing a publication safe).

An official's request to publish (or an approval) is recorded on the case
(``publish_requested_at``) before a worker is asked to publish it: only workers can build
exposures, and if the broker cannot take the task, ``case_publish_requested`` (run by the
beat-driven publication sweep) publishes the case once it is back.
"""

import csv
import datetime as dt
import io
import logging
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from leavehome.audit import audit_record
from leavehome.errors import ServiceError
from notifications import matching
from notifications.advice import case_advice_pin
from notifications.exposures import exposures_store
from notifications.feed import exposure_feed_append
from notifications.models import Case, CaseVisit, ExposureToken
from notifications.official_selectors import case_visit_previews
from notifications.safety import approval_needed, publication_reach_estimate
from venues.models import Venue

logger = logging.getLogger(__name__)

# A CSV import is a list an official prepared by hand; more rows than this is a mistake.
IMPORT_MAX_ROWS = 500
IMPORT_COLUMNS = ("venue_id", "start", "end")


def case_visit_window_errors(*, start, end, now=None) -> list[str]:
    """Why the window ``[start, end)`` cannot be published: empty list if it can."""
    now = now or timezone.now()
    errors = []
    if start is None or end is None:
        return [_("Enter both the start and the end of the window.")]
    if end <= start:
        errors.append(_("The window must end after it starts."))
    if end > now:
        errors.append(_("The window cannot end in the future."))
    if start < now - dt.timedelta(days=settings.LEAVEHOME_RETENTION_DAYS):
        errors.append(
            _("The window must start within the last %(days)d days: older visits are no longer stored.")
            % {"days": settings.LEAVEHOME_RETENTION_DAYS}
        )
    return errors


class CaseStateError(ServiceError):
    """The case is not in a state that allows this action."""

    code = "case_state"
    status = 409


def _case_lock(case: Case) -> Case:
    return Case.objects.select_for_update().get(pk=case.pk)


def _publishable_visits(case: Case, *, now) -> list[CaseVisit]:
    """The case's visits if it can be published now; raises CaseStateError or ValidationError if not."""
    approved = case.status == Case.Status.AWAITING_APPROVAL and case.approved_by_id is not None
    if case.status != Case.Status.DRAFT and not approved:
        if case.status == Case.Status.AWAITING_APPROVAL:
            raise CaseStateError(_("This case is waiting for a second official's approval."))
        raise CaseStateError(_("Only a draft case can be published."))
    # An upload's visits are proposals: nothing of them is published before an official has
    # reviewed them (notifications/case_uploads.py).
    proposed = case.visits.filter(review=CaseVisit.Review.PROPOSED).count()
    if proposed:
        raise CaseStateError(
            _("Review the %(n)d visits the case uploaded first: accept or remove them.") % {"n": proposed}
        )
    visits = list(case.visits.filter(review=CaseVisit.Review.ACCEPTED).select_related("venue", "case"))
    if not visits:
        raise CaseStateError(_("Add at least one venue visit before publishing."))
    for visit in visits:
        errors = case_visit_window_errors(start=visit.start, end=visit.end, now=now)
        if errors:
            raise ValidationError([f"{visit}: {error}" for error in errors])
    # A window that ends before any code of its venue was issued yields no exposure token:
    # publishing it would tell nobody while the official believes phones were told.
    empty = [preview.case_visit for preview in case_visit_previews(visits) if not preview.exposure_tokens]
    if empty:
        raise ValidationError(
            [
                _("%(visit)s: no code of this venue was issued before the window ends, so no phone can be told.")
                % {"visit": visit}
                for visit in empty
            ]
        )
    return visits


@dataclass(frozen=True)
class Publication:
    """A case just published, and the matching work it calls for: case visit ids by date."""

    case: Case
    chunks: dict[dt.date, list[int]]


def case_publish_check(*, case: Case) -> None:
    """Raise the errors case_publish would raise now, without publishing (the admin's early answer)."""
    _publishable_visits(case, now=timezone.now())


def _actor_or_none(actor):
    return actor if getattr(actor, "is_authenticated", False) else None


def case_publish_request(*, case: Case, actor) -> Case:
    """Record an official's request to publish a case, for a worker to carry out (``case_publish``).

    Raises the errors case_publish would, so the official sees them at once; otherwise the
    request is stored on the case in this transaction, and stays until a worker has
    published the case (or found it can no longer be published). A second click keeps the
    first request's time.
    """
    with transaction.atomic():
        case = _case_lock(case)
        _publishable_visits(case, now=timezone.now())
        case.publish_requested_at = case.publish_requested_at or timezone.now()
        case.publish_requested_by = _actor_or_none(actor)
        case.save(update_fields=["publish_requested_at", "publish_requested_by"])
    return case


def case_publish_request_drop(*, case_id: int, reason: str) -> None:
    """Forget a request to publish that cannot succeed (the case is as the official left it)."""
    if Case.objects.filter(pk=case_id, publish_requested_at__isnull=False).update(publish_requested_at=None):
        logger.warning("case %s not published, request dropped: %s", case_id, reason)


def case_publish_requested(*, older_than: dt.timedelta) -> Publication | None:
    """Publish the oldest case whose request (or approval) is older than ``older_than`` and that no worker took.

    For the publication sweep: a request normally becomes a ``publish_case`` task at once,
    but one made while the broker was down did not. The case is claimed FOR UPDATE SKIP
    LOCKED, so two sweeps, or a sweep and the task, never publish it twice (the loser finds
    it published: CaseStateError, a no-op). Returns the publication as ``case_publish``
    does (no chunks when the case awaits approval, or was left as it was with its request
    dropped because it can no longer be published), or None when no request waits.
    """
    with transaction.atomic():
        case = (
            Case.objects.select_for_update(skip_locked=True)
            .filter(publish_requested_at__lte=timezone.now() - older_than)
            .order_by("publish_requested_at", "pk")
            .first()
        )
        if case is None:
            return None
        actor = case.approved_by if case.approved_by_id is not None else case.publish_requested_by
        try:
            with transaction.atomic():
                return case_publish(case=case, actor=actor)
        except ValidationError as error:
            case_publish_request_drop(case_id=case.pk, reason=" ".join(error.messages))
            return Publication(case=case, chunks={})


def case_publish(*, case: Case, actor) -> Publication:
    """Publish a draft case: build its exposure tokens and append them to the feed.

    Raises CaseStateError if the case is not a draft (already published: a repeated task is
    a no-op) or has no case visit, ValidationError if a window is not publishable. Writes
    the case visits to match, by date and chunk, to the publication backlog in this
    transaction, and returns them; the caller queues one sweep per chunk once this commits
    (notifications/tasks.py, ``publication_match_later``), so several workers share a big
    publication, and beat's sweep finds any chunk whose task was never queued.
    """
    with transaction.atomic():
        case = _case_lock(case)
        now = timezone.now()
        visits = _publishable_visits(case, now=now)
        chunks = exposures_store(visits)
        if case.approved_by_id is None:
            # Estimated before anything is matched or written: above the threshold a second
            # official decides (notifications/safety.py). The exposure tokens stay stored,
            # but neither matching direction joins a case that is not published.
            estimate = publication_reach_estimate(case_id=case.pk, dates=chunks)
            if approval_needed(estimate):
                case.status, case.estimated_devices = Case.Status.AWAITING_APPROVAL, estimate
                case.publish_requested_by, case.publish_requested_at = _actor_or_none(actor), None
                case.save(update_fields=["status", "estimated_devices", "publish_requested_by", "publish_requested_at"])
                audit_record(actor=actor, action="case.approval_requested", obj=case, estimated_devices=estimate)
                return Publication(case=case, chunks={})  # nothing to match until approved
            case.estimated_devices = estimate
        case.status, case.published_at, case.publish_requested_at = Case.Status.PUBLISHED, now, None
        case_advice_pin(case)
        case.save(
            update_fields=[
                "status",
                "published_at",
                "publish_requested_at",
                "advice_high",
                "advice_low",
                "estimated_devices",
            ]
        )
        exposure_feed_append(case_visit_ids=[visit.pk for visit in visits], status="active")
        matching.publication_backlog_add(case_id=case.pk, chunks=chunks)
        audit_record(actor=actor, action="case.publish", obj=case, case_visits=len(visits), dates=len(chunks))
    return Publication(case=case, chunks=chunks)


def case_approve(*, case: Case, actor) -> Case:
    """A second official releases a publication that waited for approval (audited).

    Raises CaseStateError if the case is not awaiting approval or ``actor`` is the official
    who asked to publish it (two different people decide a mass alert). The caller checks
    ``notifications.publish_case`` and has a worker publish the case once this commits
    (notifications/tasks.py, ``case_approve_later``); the approval is a request to publish
    (``publish_requested_at``), so the publication sweep carries it out if that task is lost.
    """
    with transaction.atomic():
        case = _case_lock(case)
        if case.status != Case.Status.AWAITING_APPROVAL or case.approved_by_id is not None:
            raise CaseStateError(_("Only a case awaiting approval can be approved."))
        if case.publish_requested_by_id is not None and case.publish_requested_by_id == getattr(actor, "pk", None):
            raise CaseStateError(_("A second official must approve: you asked for this publication."))
        case.approved_by, case.approved_at = actor, timezone.now()
        case.publish_requested_at = case.approved_at
        case.save(update_fields=["approved_by", "approved_at", "publish_requested_at"])
        audit_record(actor=actor, action="case.approve", obj=case, estimated_devices=case.estimated_devices)
    return case


def case_approval_decline(*, case: Case, actor) -> Case:
    """Send a case awaiting approval back to draft, to correct or drop; nothing was published."""
    with transaction.atomic():
        case = _case_lock(case)
        if case.status != Case.Status.AWAITING_APPROVAL or case.approved_by_id is not None:
            raise CaseStateError(_("Only a case awaiting approval can be sent back to draft."))
        case.status = Case.Status.DRAFT
        case.save(update_fields=["status"])
        # Its exposure tokens are rebuilt at the next attempt (the visits may change).
        ExposureToken.objects.filter(case_visit__case=case).delete()
        audit_record(actor=actor, action="case.approval_decline", obj=case)
    return case


def case_withdraw(*, case: Case, actor, reason: str = "") -> Case:
    """Withdraw a published case: its notifications and feed items become ``withdrawn``.

    Exposure tokens stay (retention removes them) but no longer match: both matching
    directions join only published cases. Notifications get a new ``updated_at`` so phones
    polling for changes see the withdrawal.
    """
    with transaction.atomic():
        case = _case_lock(case)
        if case.status != Case.Status.PUBLISHED:
            raise CaseStateError(_("Only a published case can be withdrawn."))
        case.status, case.withdrawn_at = Case.Status.WITHDRAWN, timezone.now()
        case.save(update_fields=["status", "withdrawn_at"])
        case_visit_ids = list(case.visits.values_list("pk", flat=True))
        exposure_feed_append(case_visit_ids=case_visit_ids, status="withdrawn")
        withdrawn = matching.notifications_withdraw(case_id=case.pk)
        audit_record(actor=actor, action="case.withdraw", obj=case, notifications=withdrawn, reason=reason)
    return case


@dataclass
class ImportRow:
    line: int
    venue_id: str
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    errors: list[str] = field(default_factory=list)


def _local_datetime(text: str) -> dt.datetime:
    """ISO 8601; without an offset it is local time (settings.TIME_ZONE)."""
    value = dt.datetime.fromisoformat(text.strip())
    return timezone.make_aware(value) if timezone.is_naive(value) else value


def case_visits_csv_parse(text: str, *, now=None) -> list[ImportRow]:
    """Parse and check a CSV of case visits (``venue_id,start,end``, header optional); nothing is saved.

    Every row comes back, with its errors (unknown venue, bad time, window not publishable),
    so the official sees the whole preview at once.
    """
    try:
        lines = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    except csv.Error as error:
        # Over the csv module's field limit (131,072 characters) or badly quoted.
        raise ValidationError(_("The file cannot be read as CSV: a cell is far too long or badly quoted.")) from error
    if lines and [cell.strip().lower() for cell in lines[0][:3]] == list(IMPORT_COLUMNS):
        lines = [None, *lines[1:]]
    rows = []
    for number, cells in enumerate(lines, start=1):
        if cells is None or not any(cell.strip() for cell in cells):
            continue
        if len(rows) >= IMPORT_MAX_ROWS:
            raise ValidationError(_("A file may hold at most %(n)d visits.") % {"n": IMPORT_MAX_ROWS})
        row = ImportRow(line=number, venue_id=cells[0].strip() if cells else "")
        rows.append(row)
        if len(cells) != 3:
            row.errors.append(_("Expected 3 columns: venue id, start, end."))
            continue
        if not _is_uuid(row.venue_id):
            row.errors.append(_("The venue id is not valid."))
        try:
            row.start, row.end = _local_datetime(cells[1]), _local_datetime(cells[2])
        except ValueError:
            row.errors.append(_("Times must be ISO 8601, e.g. 2026-11-23 12:40."))
            continue
        row.errors += case_visit_window_errors(start=row.start, end=row.end, now=now)
    candidates = [str(uuid.UUID(row.venue_id)) for row in rows if _is_uuid(row.venue_id)]
    known = {str(pk) for pk in Venue.objects.filter(pk__in=candidates).values_list("pk", flat=True)}
    for row in rows:
        if _is_uuid(row.venue_id) and str(uuid.UUID(row.venue_id)) not in known:
            row.errors.append(_("No venue has this id."))
    return rows


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def case_visits_import(*, case: Case, rows: list[ImportRow], actor) -> list[CaseVisit]:
    """Add the parsed rows to a draft case, all or nothing (raises ValidationError if any row has errors)."""
    if any(row.errors for row in rows):
        raise ValidationError(_("Fix the rows with errors first: nothing was imported."))
    if not rows:
        raise ValidationError(_("The file holds no visits."))
    with transaction.atomic():
        case = _case_lock(case)
        if case.status != Case.Status.DRAFT:
            raise CaseStateError(_("Visits can be added to a draft case only."))
        visits = CaseVisit.objects.bulk_create(
            CaseVisit(
                case=case, venue_id=uuid.UUID(row.venue_id), start=row.start, end=row.end, source=CaseVisit.Source.CSV
            )
            for row in rows
        )
        audit_record(actor=actor, action="case.import_visits", obj=case, rows=len(visits))
    return visits
