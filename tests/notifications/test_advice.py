"""Advice templates (PROTOCOL §7): versions, rendering, the permission, the audit, the pin."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone, translation

from leavehome.models import AuditEntry
from notifications.advice import BUILTIN, advice_in_force, advice_render, advice_template_publish
from notifications.models import AdviceTemplate, Risk
from tests.notifications.official_fixtures import official_make
from tests.phone.server import case_publish_at, venue_make, venue_qr_text

EXPOSURE = dt.date(2026, 11, 23)


def test_the_shipped_defaults_are_in_force_in_both_languages(db):
    high, low = advice_in_force(Risk.HIGH), advice_in_force(Risk.LOW)
    assert (high.version, low.version) == (1, 1)  # stored by the data migration
    assert (high.text_en, high.text_zh, high.test_day_offsets) == (
        BUILTIN[Risk.HIGH].text_en,
        BUILTIN[Risk.HIGH].text_zh,
        [3, 7],
    )
    assert low.test_day_offsets == []


def test_rendering_fills_venue_date_and_test_dates_per_language(db):
    venue = venue_make(name_en="Lucky Noodle House", name_zh="好運麵家")
    advice = advice_render(advice_in_force(Risk.HIGH), venue=venue, exposure_date=EXPOSURE)
    assert advice["en"].startswith("A confirmed case was at Lucky Noodle House on 2026-11-23 ")
    assert "Get tested on 2026-11-26 and 2026-11-30," in advice["en"]
    assert advice["zh"].startswith("您於2026-11-23到訪好運麵家時")
    assert "請於2026-11-26及2026-11-30接受檢測" in advice["zh"]


def test_a_new_version_is_audited_and_in_force(db):
    official = official_make("advisor", permissions=["edit_advice"])
    template = advice_template_publish(
        risk=Risk.LOW,
        text_en="Test on {test_dates}.",
        text_zh="請於{test_dates}檢測。",
        test_day_offsets=[5],
        actor=official,
    )
    assert template.version == 2 and advice_in_force(Risk.LOW) == template
    entry = AuditEntry.objects.get(action="advice.publish")
    assert (entry.actor, entry.detail) == (official, {"risk": "low", "version": 2})


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"text_en": "Visit {clinic}."}, "Unknown placeholder {clinic}"),
        ({"text_zh": "請於{test_dates檢測"}, "A brace is not closed."),
        ({"test_day_offsets": [40]}, "between 0 and 31"),
        ({"text_en": "  "}, "Enter the advice."),
    ],
)
def test_a_bad_template_is_refused_and_nothing_is_written(db, fields, problem):
    values = {"risk": Risk.HIGH, "text_en": "On {date}.", "text_zh": "於{date}。", "test_day_offsets": [3], **fields}
    with pytest.raises(ValidationError) as refused, translation.override("en"):
        advice_template_publish(actor=None, **values)
    assert problem in " ".join(refused.value.messages)
    assert AdviceTemplate.objects.filter(risk=Risk.HIGH).count() == 1
    assert not AuditEntry.objects.filter(action="advice.publish").exists()


def test_a_publication_pins_the_version_in_force(db):
    venue = venue_make()
    venue_qr_text(venue, issued_days_ago=3)
    visit = case_publish_at(venue=venue, start=timezone.now() - dt.timedelta(days=1))
    visit.case.refresh_from_db()
    pinned = visit.case.advice_high
    assert pinned == advice_in_force(Risk.HIGH)
    advice_template_publish(risk=Risk.HIGH, text_en="New.", text_zh="新。", test_day_offsets=[], actor=None)
    visit.case.refresh_from_db()
    assert visit.case.advice_high == pinned  # phones told before keep what they were told


def test_only_holders_of_the_permission_may_add_a_version(client, db):
    client.force_login(official_make("official"))
    assert client.get(reverse("admin:notifications_advicetemplate_changelist")).status_code == 200
    assert client.get(reverse("admin:notifications_advicetemplate_add")).status_code == 403

    client.force_login(official_make("advisor", permissions=["edit_advice"]))
    form = client.get(reverse("admin:notifications_advicetemplate_add") + "?risk=low")
    assert form.context["adminform"].form.initial["text_en"] == BUILTIN[Risk.LOW].text_en
    answer = client.post(
        reverse("admin:notifications_advicetemplate_add"),
        {"risk": "low", "text_en": "Watch {venue}.", "text_zh": "留意{venue}。", "test_day_offsets": "2, 4"},
    )
    assert answer.status_code == 302
    assert advice_in_force(Risk.LOW).test_day_offsets == [2, 4]
    bad = client.post(
        reverse("admin:notifications_advicetemplate_add"),
        {"risk": "low", "text_en": "Watch {place}.", "text_zh": "留意。", "test_day_offsets": ""},
    )
    assert bad.status_code == 200 and "Unknown placeholder" in bad.content.decode()
    assert advice_in_force(Risk.LOW).version == 2
