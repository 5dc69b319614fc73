"""Safety rails on publication: a second official above a size, and a kill switch.

Two-person rule. A publication that would notify more than PUBLICATION_APPROVAL_THRESHOLD
devices waits for a second official. The number is estimated by the worker that publishes
(it alone can open venue keys to build the exposure tokens): a count of the distinct devices
holding any of the case's exposure tokens, before anything is matched or written
(``publication_reach_estimate``). The case then waits as "awaiting approval" and
``case_approve`` (notifications/cases.py) lets a different official release it.

Kill switch. One row (KillSwitch, pk 1). While it is on, every matching and push task parks
itself in DeferredTask instead of running (``task_deferred_if_paused``: one primary-key read
when off); turning it off takes the parked tasks out in the same transaction, and the caller
queues them on its commit (notifications/tasks.py), so none is lost or run twice. Uploads are
still accepted and stored, and officials can still prepare and request publications: nothing
reaches a phone until it is off.

Race: a worker that read "on" and parks its task locks the switch row first (FOR UPDATE) and
checks again, and turning it off takes the same lock, so a task parked just as the switch
goes off is either re-queued by it or sees "off" and runs.
"""

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from psycopg import sql

from leavehome.audit import audit_record
from leavehome.lib.sql import placeholders, sql_run
from notifications.models import CaseVisit, DeferredTask, ExposureToken, KillSwitch, VisitToken

SWITCH_ID = 1


def kill_switch_state() -> KillSwitch:
    """The switch as stored, or an unsaved "off" if it was never used."""
    return KillSwitch.objects.filter(pk=SWITCH_ID).select_related("changed_by").first() or KillSwitch(pk=SWITCH_ID)


def kill_switch_is_on() -> bool:
    """The workers' check: one primary-key read."""
    return KillSwitch.objects.filter(pk=SWITCH_ID, active=True).exists()


def kill_switch_set(*, active: bool, actor, reason: str = "") -> tuple[KillSwitch, list[tuple[str, list]]]:
    """Turn the kill switch on or off, audited; returns it and, when turned off, the parked tasks.

    Turning it off removes the parked tasks in this transaction and hands them back as
    ``(task name, args)``: the caller queues them on commit (notifications/tasks.py,
    ``kill_switch_turn``). The caller checks ``notifications.operate_kill_switch``.
    """
    with transaction.atomic():
        KillSwitch.objects.get_or_create(pk=SWITCH_ID)
        switch = KillSwitch.objects.select_for_update().get(pk=SWITCH_ID)
        switch.active = active
        switch.reason = reason.strip()[:300]
        switch.changed_by = actor if getattr(actor, "is_authenticated", False) else None
        switch.changed_at = timezone.now()
        switch.save()
        parked = []
        if not active:
            rows = list(DeferredTask.objects.order_by("id").values_list("id", "task", "args"))
            DeferredTask.objects.filter(id__in=[row[0] for row in rows]).delete()
            parked = [(task, args) for _, task, args in rows]
        audit_record(
            actor=actor,
            action="kill_switch.on" if active else "kill_switch.off",
            obj=switch,
            reason=switch.reason,
            requeued=len(parked),
        )
    return switch, parked


def task_deferred_if_paused(task: str, args: list) -> bool:
    """True if the kill switch is on, having parked ``task(*args)`` to run when it is off.

    Call first thing in a matching or push task; return at once when it answers True.
    """
    if not kill_switch_is_on():
        return False
    with transaction.atomic():
        switch = KillSwitch.objects.select_for_update().filter(pk=SWITCH_ID).first()
        if switch is None or not switch.active:
            return False  # turned off meanwhile: run now
        DeferredTask.objects.create(task=task, args=list(args))
    return True


def approval_needed(estimate: int) -> bool:
    threshold = settings.PUBLICATION_APPROVAL_THRESHOLD
    return threshold > 0 and estimate > threshold


def publication_reach_estimate(*, case_id: int, dates) -> int:
    """Distinct devices holding any exposure token of the case: how many it would notify.

    Index: the case's exposure tokens by ExposureToken's case_visit_id index, each probed in
    the visit-token partition of its date through its hash index on token (the publication
    matching's own plan), so the cost is that of matching the case once, without writing.
    """
    dates = sorted(set(dates))
    if not dates:
        return 0
    date_field = VisitToken._meta.get_field("date")
    query = sql.SQL(
        """
        SELECT count(DISTINCT v.device_id)
        FROM {exposure} AS e
        JOIN {case_visit} AS cv ON cv.id = e.case_visit_id
        JOIN {visit} AS v ON v.date = e.date AND v.token = e.token
        WHERE cv.case_id = %s AND v.date IN ({dates}) AND e.date IN ({dates})
        """
    ).format(
        exposure=sql.Identifier(ExposureToken._meta.db_table),
        case_visit=sql.Identifier(CaseVisit._meta.db_table),
        visit=sql.Identifier(VisitToken._meta.db_table),
        dates=placeholders(len(dates)),
    )
    db_dates = [date_field.get_db_prep_value(date, connection) for date in dates]
    ((devices,),) = sql_run(query, [case_id, *db_dates, *db_dates])
    return devices
