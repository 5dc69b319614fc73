"""Advice templates (PROTOCOL §7): what a notification advises, per risk level, in both languages.

A template is text with placeholders, filled in per notification:

    {venue}       the venue's name, in the template's language
    {date}        the exposure date (the local date of the case visit's window), YYYY-MM-DD
    {test_dates}  the exposure date plus each of the template's test-day offsets, YYYY-MM-DD

Templates are versioned and never edited in place: ``advice_template_publish`` writes the
next version, audited, and the highest version of a risk is in force. ``case_publish`` pins
the versions in force on the case, so what a phone was told does not change afterwards.
"""

import datetime as dt
import re

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils.translation import gettext as _

from leavehome.audit import audit_record
from notifications.models import AdviceTemplate, Risk

PLACEHOLDERS = ("venue", "date", "test_dates")
_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")
# A test more than a month after exposure is past retention and past any incubation period.
MAX_TEST_DAY_OFFSET = 31
MAX_TEST_DAYS = 5

# In force when no template of a risk is stored (a database emptied by tests; migration 0010
# stores the same texts as version 1 of each).
BUILTIN = {
    Risk.HIGH: AdviceTemplate(
        risk=Risk.HIGH,
        version=0,
        text_en=(
            "A confirmed case was at {venue} on {date} at about the same time as you. "
            "Get tested on {test_dates}, even if you feel well, and watch for symptoms for 14 days."
        ),
        text_zh="您於{date}到訪{venue}時，有確診者約在同一時間在場。即使沒有病徵，請於{test_dates}接受檢測，並在14天內留意身體狀況。",
        test_day_offsets=[3, 7],
    ),
    Risk.LOW: AdviceTemplate(
        risk=Risk.LOW,
        version=0,
        text_en=(
            "A confirmed case visited {venue} on {date}, the day you were there. "
            "Watch for symptoms for 14 days and get tested at once if you feel unwell."
        ),
        text_zh="您於{date}到訪{venue}當日，有確診者曾經到訪。請在14天內留意身體狀況，如感不適請立即接受檢測。",
        test_day_offsets=[],
    ),
}


def advice_in_force(risk: str) -> AdviceTemplate:
    """The template in force for ``risk``: its highest stored version, else the built-in one."""
    return AdviceTemplate.objects.filter(risk=risk).order_by("-version").first() or BUILTIN[risk]


def advice_text_errors(text: str) -> list[str]:
    """Why a template text cannot be used: unknown or malformed placeholders."""
    errors = []
    for name in _PLACEHOLDER_RE.findall(text):
        if name not in PLACEHOLDERS:
            errors.append(
                _("Unknown placeholder {%(name)s}; use %(known)s.")
                % {"name": name, "known": ", ".join("{" + known + "}" for known in PLACEHOLDERS)}
            )
    if _PLACEHOLDER_RE.sub("", text).count("{") or _PLACEHOLDER_RE.sub("", text).count("}"):
        errors.append(_("A brace is not closed."))
    return errors


def advice_offsets_errors(offsets) -> list[str]:
    if not isinstance(offsets, list) or not all(isinstance(day, int) and not isinstance(day, bool) for day in offsets):
        return [_("Test days must be whole numbers of days after the exposure.")]
    if len(offsets) > MAX_TEST_DAYS or any(day < 0 or day > MAX_TEST_DAY_OFFSET for day in offsets):
        return [
            _("At most %(n)d test days, each between 0 and %(max)d days after the exposure.")
            % {"n": MAX_TEST_DAYS, "max": MAX_TEST_DAY_OFFSET}
        ]
    return []


def advice_template_publish(*, risk: str, text_en: str, text_zh: str, test_day_offsets, actor) -> AdviceTemplate:
    """Put a new version of the advice for ``risk`` in force, audited; raises ValidationError.

    The caller checks the ``notifications.edit_advice`` permission; cases published before
    keep the version they pinned.
    """
    errors = {}
    for field, text in (("text_en", text_en), ("text_zh", text_zh)):
        problems = advice_text_errors(text) + ([] if text.strip() else [_("Enter the advice.")])
        if problems:
            errors[field] = problems
    if advice_offsets_errors(test_day_offsets):
        errors["test_day_offsets"] = advice_offsets_errors(test_day_offsets)
    if risk not in Risk.values:
        errors["risk"] = [_("Unknown risk level.")]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        # The unique (risk, version) key settles two officials saving at once: one fails.
        latest = AdviceTemplate.objects.filter(risk=risk).aggregate(latest=Max("version"))["latest"] or 0
        template = AdviceTemplate.objects.create(
            risk=risk,
            version=latest + 1,
            text_en=text_en.strip(),
            text_zh=text_zh.strip(),
            test_day_offsets=sorted(set(test_day_offsets)),
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        audit_record(actor=actor, action="advice.publish", obj=template, risk=risk, version=template.version)
    return template


def advice_test_dates(template: AdviceTemplate, exposure_date: dt.date) -> list[dt.date]:
    return [exposure_date + dt.timedelta(days=offset) for offset in template.test_day_offsets]


def _dates_joined(dates: list[str], language: str) -> str:
    """``2026-11-26 and 2026-11-30`` / ``2026-11-26及2026-11-30``."""
    if len(dates) < 2:
        return "".join(dates)
    last = {"en": " and ", "zh": "及"}[language]
    return {"en": ", ", "zh": "、"}[language].join(dates[:-1]) + last + dates[-1]


def _filled(text: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER_RE.sub(lambda match: values.get(match.group(1), match.group(0)), text)


def advice_render(template: AdviceTemplate, *, venue, exposure_date: dt.date) -> dict[str, str]:
    """The template filled in for one notification: ``{"en": …, "zh": …}``."""
    dates = [date.isoformat() for date in advice_test_dates(template, exposure_date)]
    texts = {"en": (template.text_en, venue.name_en), "zh": (template.text_zh, venue.name_zh)}
    return {
        language: _filled(
            text, {"venue": venue_name, "date": exposure_date.isoformat(), "test_dates": _dates_joined(dates, language)}
        )
        for language, (text, venue_name) in texts.items()
    }


def case_advice(case, risk: str, *, in_force: dict | None = None) -> AdviceTemplate:
    """The template a case's notifications of ``risk`` use: pinned at publication, else in force.

    A case published before templates existed pinned nothing; ``in_force`` (risk → template,
    filled as it goes) lets a caller rendering many notifications look those up once.
    """
    pinned = case.advice_high if risk == Risk.HIGH else case.advice_low
    if pinned is not None:
        return pinned
    if in_force is None:
        return advice_in_force(risk)
    if risk not in in_force:
        in_force[risk] = advice_in_force(risk)
    return in_force[risk]


def case_advice_pin(case) -> None:
    """Pin the versions in force on ``case`` (saved by the caller, inside its publication)."""
    for risk, field in ((Risk.HIGH, "advice_high"), (Risk.LOW, "advice_low")):
        template = advice_in_force(risk)
        setattr(case, field, template if template.pk else None)
