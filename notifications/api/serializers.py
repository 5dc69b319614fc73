"""Request validation and response shapes of the phone API (PROTOCOL §4).

Request serializers reject unknown fields, so a typo in an app is an error, not silently
ignored data. Response serializers exist so the OpenAPI document states every answer exactly.
"""

import datetime as dt
import re

from django.conf import settings
from django.utils import timezone
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from leavehome.digits import AsciiDateTimeField, AsciiIntegerField
from leavehome.lib.b64u import b64u_decode, b64u_encode
from notifications.advice import advice_render, advice_test_dates, case_advice
from notifications.exposures import case_visit_window
from notifications.models import Risk
from notifications.push.channels import APNS_TOKEN_RE, FCM_TOKEN_RE
from notifications.tokens import TOKEN_BYTES

# 16 bytes in b64u: 22 characters, the last of which carries 2 bits and 4 zero bits.
TOKEN_PATTERN = r"^[A-Za-z0-9_-]{21}[AQgw]$"  # noqa: S105 (a regex, not a secret)
# [0-9], not \d: \d would take Arabic-Indic and full-width digits (leavehome/digits.py).
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # used with fullmatch: no trailing newline slips by
# Bad tokens named per list: enough to fix an app, bounded so a garbage upload of thousands
# of tokens does not get an answer as large as itself.
MAX_TOKEN_ERRORS = 20


class StrictSerializer(serializers.Serializer):
    """A serializer that refuses fields it does not declare."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class StrictSerializerSchema(OpenApiSerializerExtension):
    """States in the OpenAPI document that a strict serializer refuses undeclared fields."""

    target_class = StrictSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        return {**schema, "additionalProperties": False}


class LocalDateField(serializers.DateField):
    """A local date written exactly ``YYYY-MM-DD`` (no other ISO 8601 spelling)."""

    def to_internal_value(self, value):
        if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
            self.fail("invalid", format="YYYY-MM-DD")
        return super().to_internal_value(value)


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "string", "minLength": 22, "maxLength": 22, "pattern": TOKEN_PATTERN},
        "description": "Visit tokens, each b64u (no padding) of exactly 16 bytes.",
    }
)
class TokenListField(serializers.Field):
    """A list of b64u tokens of exactly 16 bytes → list of bytes; errors name each bad index.

    A plain loop rather than a ListField of child fields: an upload holds thousands of tokens
    and this is the hot path of the busiest endpoint.
    """

    def to_internal_value(self, data):
        if not isinstance(data, list):
            raise serializers.ValidationError("Must be a list of tokens.", code="invalid")
        tokens, errors = [], {}
        for index, text in enumerate(data):
            if len(errors) == MAX_TOKEN_ERRORS:
                break
            try:
                raw = b64u_decode(text)
            except (ValueError, TypeError):
                errors[index] = ["Not base64url without padding."]
                continue
            if len(raw) != TOKEN_BYTES:
                errors[index] = [f"Must be {TOKEN_BYTES} bytes; got {len(raw)}."]
                continue
            tokens.append(raw)
        if errors:
            raise serializers.ValidationError(errors, code="invalid")
        return tokens

    def to_representation(self, value):
        return [b64u_encode(token) for token in value]


class VisitDaySerializer(StrictSerializer):
    """The tokens of one local date."""

    date = LocalDateField(help_text="Local date (deployment time zone) the tokens belong to.")
    tokens = TokenListField()

    def validate_date(self, value):
        today = timezone.localdate()
        oldest = today - dt.timedelta(days=settings.LEAVEHOME_RETENTION_DAYS)
        if value < oldest:
            raise serializers.ValidationError(f"Older than the retention period; the oldest accepted is {oldest}.")
        if value > today + dt.timedelta(days=1):
            raise serializers.ValidationError("In the future.")
        return value


class VisitUploadSerializer(StrictSerializer):
    """A visit upload: all or nothing (PROTOCOL §4)."""

    days = VisitDaySerializer(many=True)

    def validate_days(self, days):
        count = sum(len(day["tokens"]) for day in days)
        limit = settings.LEAVEHOME_MAX_TOKENS_PER_UPLOAD
        if count > limit:
            raise serializers.ValidationError(f"At most {limit} tokens per upload; got {count}.", code="too_many")
        return days

    def to_days(self) -> dict[dt.date, list[bytes]]:
        """The validated days as {date: tokens}, with repeated dates merged."""
        days: dict[dt.date, list[bytes]] = {}
        for day in self.validated_data["days"]:
            days.setdefault(day["date"], []).extend(day["tokens"])
        return days


class EmptyBodySerializer(StrictSerializer):
    """A request without fields: ``{}`` or no body at all."""


# --- Push channel bodies (validated by notifications.push.channels; here for the schema) ----
# Not strict: other fields (a browser's ``expirationTime``) are ignored by the push service.


class WebPushKeysSerializer(serializers.Serializer):
    """The subscription's keys, b64u: p256dh (65 bytes) and auth (16 bytes)."""

    p256dh = serializers.CharField()
    auth = serializers.CharField()


class WebPushSubscriptionSerializer(serializers.Serializer):
    """A browser's PushSubscription.toJSON()."""

    endpoint = serializers.URLField()
    keys = WebPushKeysSerializer()
    expirationTime = serializers.IntegerField(
        required=False, allow_null=True, help_text="Ignored."
    )  # the browser's own spelling


class WebPushChannelSerializer(serializers.Serializer):
    """Wake the device through Web Push (RFC 8030, payload encrypted per RFC 8291)."""

    kind = serializers.ChoiceField(choices=["webpush"])
    subscription = WebPushSubscriptionSerializer()


class FcmChannelSerializer(serializers.Serializer):
    """Wake the device through Firebase Cloud Messaging with a content-free message."""

    kind = serializers.ChoiceField(choices=["fcm"])
    token = serializers.RegexField(FCM_TOKEN_RE, help_text="The FCM registration token.")


class ApnsChannelSerializer(serializers.Serializer):
    """Wake the device through APNs with a content-free message."""

    kind = serializers.ChoiceField(choices=["apns"])
    token = serializers.RegexField(APNS_TOKEN_RE, help_text="The APNs device token, hex.")


# --- Responses ----------------------------------------------------------------------------


class ConfigSerializer(serializers.Serializer):
    protocol = serializers.CharField()
    slot_seconds = serializers.IntegerField()
    time_zone = serializers.CharField()
    default_visit_seconds = serializers.IntegerField()
    max_visit_seconds = serializers.IntegerField()
    retention_days = serializers.IntegerField()
    max_tokens_per_upload = serializers.IntegerField()
    venue_code_prefix = serializers.CharField()
    case_upload_code_hours = serializers.IntegerField()
    max_case_upload_visits = serializers.IntegerField()


class DeviceCreatedSerializer(serializers.Serializer):
    device_id = serializers.UUIDField()
    token = serializers.CharField(help_text="The device secret; shown once, send it as 'Authorization: Bearer …'.")


class AcceptedSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Distinct (date, token) pairs of the upload now stored.")


class BilingualSerializer(serializers.Serializer):
    en = serializers.CharField()
    zh = serializers.CharField()


class VenueRefSerializer(serializers.Serializer):
    sub = serializers.UUIDField(source="id")
    name = serializers.SerializerMethodField()

    @extend_schema_field(BilingualSerializer)
    def get_name(self, venue):
        return {"en": venue.name_en, "zh": venue.name_zh}


class WindowSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


class NotificationItemSerializer(serializers.Serializer):
    """A notification as the phone sees it; the instance comes from device_notifications()."""

    id = serializers.IntegerField()
    risk = serializers.ChoiceField(choices=Risk.values)
    status = serializers.ChoiceField(choices=["active", "withdrawn"], source="api_status")
    venue = VenueRefSerializer(source="case_visit.venue")
    date = serializers.SerializerMethodField()
    window = serializers.SerializerMethodField()
    message = serializers.SerializerMethodField()
    advice = serializers.SerializerMethodField()
    test_dates = serializers.SerializerMethodField()
    created = serializers.DateTimeField(source="created_at")

    @staticmethod
    def _window(notification):
        start, end = case_visit_window(notification.case_visit)  # padded, as matched
        return timezone.localtime(start), timezone.localtime(end)

    @extend_schema_field(WindowSerializer)
    def get_window(self, notification):
        start, end = self._window(notification)
        return {"start": start.isoformat(), "end": end.isoformat()}

    @staticmethod
    def _exposure_date(notification):
        return timezone.localtime(notification.case_visit.start).date()

    def _advice(self, notification):
        # Rendered once per item: get_message and get_advice share it.
        cache = self.root.__dict__.setdefault("_advice_rendered", {})
        in_force = self.root.__dict__.setdefault("_advice_in_force", {})
        if notification.pk not in cache:
            template = case_advice(notification.case_visit.case, notification.risk, in_force=in_force)
            cache[notification.pk] = (
                advice_render(
                    template, venue=notification.case_visit.venue, exposure_date=self._exposure_date(notification)
                ),
                advice_test_dates(template, self._exposure_date(notification)),
            )
        return cache[notification.pk]

    @extend_schema_field(OpenApiTypes.DATE)
    def get_date(self, notification):
        return self._exposure_date(notification).isoformat()

    @extend_schema_field(BilingualSerializer)
    def get_message(self, notification):
        """The case's own text, or the advice where there is none (PROTOCOL §7)."""
        case = notification.case_visit.case
        advice, _ = self._advice(notification)
        return {"en": case.message_en or advice["en"], "zh": case.message_zh or advice["zh"]}

    @extend_schema_field(BilingualSerializer)
    def get_advice(self, notification):
        """The health authority's advice for this risk, as in force when the case was published."""
        return self._advice(notification)[0]

    @extend_schema_field({"type": "array", "items": {"type": "string", "format": "date"}})
    def get_test_dates(self, notification):
        """When to get tested (local dates); empty when the advice names none."""
        return [date.isoformat() for date in self._advice(notification)[1]]


class NotificationListSerializer(serializers.Serializer):
    items = NotificationItemSerializer(many=True)
    # In UTC ("…Z"): no "+" that a hand-built query string would turn into a space.
    cursor = serializers.DateTimeField(
        default_timezone=dt.UTC, help_text="Send it back as ?since= to get only what changed."
    )


class NotificationQuerySerializer(serializers.Serializer):
    since = AsciiDateTimeField(
        required=False, help_text="The cursor of a previous answer; without it, every notification."
    )


class ExposureItemSerializer(serializers.Serializer):
    t = serializers.SerializerMethodField()
    risk = serializers.ChoiceField(choices=Risk.values)
    date = serializers.DateField()
    status = serializers.ChoiceField(choices=["active", "withdrawn"])

    @extend_schema_field({"type": "string", "pattern": TOKEN_PATTERN})
    def get_t(self, item):
        return b64u_encode(bytes(item.token))


class ExposurePageSerializer(serializers.Serializer):
    page = serializers.IntegerField(min_value=0)
    items = ExposureItemSerializer(many=True)
    closed = serializers.BooleanField(help_text="True: this page will never change (served as immutable).")
    next = serializers.IntegerField(min_value=0, help_text="The page to fetch next: page+1 if closed, else page.")


class ExposureQuerySerializer(serializers.Serializer):
    page = AsciiIntegerField(min_value=0, max_value=2**53, required=False)


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)
    visit = serializers.IntegerField(
        required=False, help_text="Case uploads: the index of the visit that was refused (PROTOCOL §6)."
    )


class ErrorSerializer(serializers.Serializer):
    """The one error format of the API (leavehome/api.py)."""

    error = ErrorBodySerializer()
