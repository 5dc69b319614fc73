"""Safety rails: a second official above PUBLICATION_APPROVAL_THRESHOLD, and the kill switch."""

import pytest
from django.urls import reverse

from leavehome.models import AuditEntry
from notifications.cases import CaseStateError
from notifications.models import Case, DeferredTask, ExposureFeedItem, Notification
from notifications.safety import kill_switch_is_on
from notifications.tasks import case_approve_later, case_publish_later, kill_switch_turn
from tests.notifications.official_fixtures import devices_at_venue, draft_make, official_make
from tests.notifications.test_push_worker import wait_for


def _publish(case, actor, capture):
    with capture(execute=True):
        case_publish_later(case=case, actor=actor)
    case.refresh_from_db()
    return case


def test_a_publication_above_the_threshold_waits_for_a_second_official(
    venue, draft, settings, django_capture_on_commit_callbacks
):
    settings.PUBLICATION_APPROVAL_THRESHOLD = 2
    devices_at_venue(venue, 3)
    first, second = official_make("first"), official_make("second")
    _publish(draft, first, django_capture_on_commit_callbacks)
    assert (draft.status, draft.estimated_devices, draft.publish_requested_by) == ("awaiting_approval", 3, first)
    assert not Notification.objects.exists() and not ExposureFeedItem.objects.exists()

    with pytest.raises(CaseStateError, match="second official"):
        case_approve_later(case=draft, actor=first)
    with django_capture_on_commit_callbacks(execute=True):
        case_approve_later(case=draft, actor=second)
    draft.refresh_from_db()
    assert (draft.status, draft.approved_by) == (Case.Status.PUBLISHED, second)
    assert Notification.objects.count() == 3
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"case.approval_requested", "case.approve", "case.publish"} <= actions


def test_below_the_threshold_it_publishes_at_once_with_its_estimate(
    venue, draft, settings, django_capture_on_commit_callbacks
):
    settings.PUBLICATION_APPROVAL_THRESHOLD = 5
    devices_at_venue(venue, 2)
    _publish(draft, official_make("official"), django_capture_on_commit_callbacks)
    assert (draft.status, draft.estimated_devices) == (Case.Status.PUBLISHED, 2)
    assert Notification.objects.count() == 2


def test_the_case_page_offers_approval_only_to_another_official(
    client, venue, draft, settings, django_capture_on_commit_callbacks
):
    settings.PUBLICATION_APPROVAL_THRESHOLD = 1
    devices_at_venue(venue, 2)
    first = official_make("first")
    _publish(draft, first, django_capture_on_commit_callbacks)
    page = reverse("admin:notifications_case_change", args=[draft.pk])
    client.force_login(first)
    assert b'id="approval-needed"' in client.get(page).content
    assert b'id="case-approve"' not in client.get(page).content
    client.force_login(official_make("second"))
    assert b'id="case-approve"' in client.get(page).content
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:notifications_case_approve", args=[draft.pk]))
    draft.refresh_from_db()
    assert draft.status == Case.Status.PUBLISHED


def test_while_the_kill_switch_is_on_a_publication_notifies_nobody(venue, draft, django_capture_on_commit_callbacks):
    devices_at_venue(venue, 1)
    operator = official_make("operator", permissions=["operate_kill_switch"])
    kill_switch_turn(active=True, actor=operator, reason="Wrong venue list sent by the lab")
    _publish(draft, operator, django_capture_on_commit_callbacks)
    assert draft.status == Case.Status.DRAFT  # parked before anything was published
    assert DeferredTask.objects.count() == 1
    assert not Notification.objects.exists() and not ExposureFeedItem.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        kill_switch_turn(active=False, actor=operator)
    draft.refresh_from_db()
    assert draft.status == Case.Status.PUBLISHED
    assert Notification.objects.count() == 1
    assert not DeferredTask.objects.exists()
    on, off = AuditEntry.objects.filter(action__startswith="kill_switch").order_by("created_at", "id")
    assert (on.action, on.detail["reason"], off.action, off.detail["requeued"]) == (
        "kill_switch.on",
        "Wrong venue list sent by the lab",
        "kill_switch.off",
        1,
    )


def test_the_kill_switch_needs_its_permission_and_shows_a_banner(client, db):
    client.force_login(official_make("official"))
    url = reverse("admin:notifications_kill_switch")
    assert client.get(url).status_code == 200
    assert client.post(url, {"active": "1", "reason": "test"}).status_code == 403
    assert not kill_switch_is_on()

    client.force_login(official_make("operator", permissions=["operate_kill_switch"]))
    assert b"Say why" in client.post(url, {"active": "1", "reason": " "}, follow=True).content
    assert not kill_switch_is_on()
    client.post(url, {"active": "1", "reason": "Mass alert sent in error"})
    assert kill_switch_is_on()
    banner = client.get(reverse("admin:index")).content.decode()
    assert 'id="kill-switch-banner"' in banner and "Mass alert sent in error" in banner
    client.post(url, {"active": "0"})
    assert not kill_switch_is_on()
    assert 'id="kill-switch-banner"' not in client.get(reverse("admin:index")).content.decode()


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_parks_the_publication_until_the_switch_is_off(live_worker):
    from tests.notifications.official_fixtures import venue_with_old_code

    venue = venue_with_old_code()
    draft = draft_make(venue)
    devices_at_venue(venue, 1)
    operator = official_make("operator", permissions=["operate_kill_switch"])
    kill_switch_turn(active=True, actor=operator, reason="drill")
    case_publish_later(case=draft, actor=operator)  # autocommit: queued at once
    assert wait_for(DeferredTask.objects.exists)
    assert Case.objects.get(pk=draft.pk).status == Case.Status.DRAFT
    assert not Notification.objects.exists()

    kill_switch_turn(active=False, actor=operator)
    assert wait_for(Notification.objects.exists)
    assert Case.objects.get(pk=draft.pk).status == Case.Status.PUBLISHED
