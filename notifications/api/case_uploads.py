"""``POST /api/v1/case-uploads``: a confirmed case sends their visit history (PROTOCOL §6).

No device authentication: the upload must not link the case to a device. The one-time code
is the credential, so attempts are throttled per address and for everyone together, and a
burst of wrong codes is logged as a warning (with a keyed hash of the address, never the
address). The view validates the body's shape, calls notifications.case_uploads, answers.
"""

import logging

from django.conf import settings
from django.core.cache import cache
from django.utils.crypto import salted_hmac
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response

from notifications.api.serializers import ErrorSerializer, StrictSerializer
from notifications.api.throttling import CaseUploadGlobalThrottle, CaseUploadIPThrottle
from notifications.api.views import PhoneAPIView
from notifications.case_uploads import UploadCodeNotFound, VisitRejected, case_upload_receive

logger = logging.getLogger(__name__)

# Wrong codes counted per window: this many from one address, or from all together, is a
# guessing attempt worth an operator's look (the throttles already slow it down).
WRONG_CODE_WINDOW_SECONDS = 15 * 60
WRONG_CODE_WARN_PER_ADDRESS = 5
WRONG_CODE_WARN_OVERALL = 100
# A venue code is a few hundred characters; far longer is not one.
VENUE_CODE_MAX_LENGTH = 4096


# PROTOCOL §6 gives this answer's body to the byte, the same for every kind of bad code; it is
# the one error of the API not in the {"error": {"code", "message"}} shape.
CODE_NOT_FOUND = {"error": "code_not_found"}


class VisitInvalid(exceptions.ValidationError):
    """One visit was refused; ``visit`` in the error names its index."""

    def __init__(self, rejected: VisitRejected):
        detail = {"visits": {str(rejected.index): {rejected.field: [rejected.message]}}}
        super().__init__(detail, code=rejected.reason)
        self.error_extra = {"visit": rejected.index, "message": f"Visit {rejected.index}: {rejected.message}"}


class UnixSecondsField(serializers.IntegerField):
    """Unix seconds as a JSON integer (no string, float or boolean)."""

    def to_internal_value(self, data):
        if type(data) is not int:
            self.fail("invalid")
        return super().to_internal_value(data)


class CaseUploadVisitSerializer(StrictSerializer):
    venue_code = serializers.CharField(
        max_length=VENUE_CODE_MAX_LENGTH, trim_whitespace=False, help_text="The venue code's JWS, as scanned."
    )
    t_in = UnixSecondsField(min_value=0, max_value=2**53, help_text="Check-in, Unix seconds.")
    t_out = UnixSecondsField(min_value=0, max_value=2**53, help_text="Check-out, Unix seconds.")


class CaseUploadVisitsField(serializers.ListField):
    """The visits, counted before any is looked at: a huge list is refused without parsing it."""

    def to_internal_value(self, data):
        if isinstance(data, list) and len(data) > settings.LEAVEHOME_MAX_CASE_UPLOAD_VISITS:
            raise serializers.ValidationError(
                f"At most {settings.LEAVEHOME_MAX_CASE_UPLOAD_VISITS} visits per upload.", code="too_many"
            )
        return super().to_internal_value(data)


class CaseUploadSerializer(StrictSerializer):
    code = serializers.CharField(max_length=32, help_text="The one-time upload code, XXXXX-XXXXX.")
    visits = CaseUploadVisitsField(child=CaseUploadVisitSerializer(), allow_empty=False)


class CaseUploadAcceptedSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Visits accepted; they await an official's review.")


def _wrong_code_noted(request) -> None:
    address = CaseUploadIPThrottle().get_ident(request)
    tag = salted_hmac("leavehome.case_upload_address", address or "").hexdigest()[:12]
    for key, limit, who in (
        (f"case-upload-wrong:{tag}", WRONG_CODE_WARN_PER_ADDRESS, f"address #{tag}"),
        ("case-upload-wrong:all", WRONG_CODE_WARN_OVERALL, "all addresses"),
    ):
        cache.add(key, 0, WRONG_CODE_WINDOW_SECONDS)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, WRONG_CODE_WINDOW_SECONDS)
            count = 1
        if count == limit:
            logger.warning(
                "case upload: %d wrong codes from %s within %d minutes",
                count,
                who,
                WRONG_CODE_WINDOW_SECONDS // 60,
            )


def _error(description):
    return OpenApiResponse(ErrorSerializer, description=description)


class CaseUploadView(PhoneAPIView):
    throttle_classes = [CaseUploadIPThrottle, CaseUploadGlobalThrottle]

    @extend_schema(
        operation_id="case_upload",
        request=CaseUploadSerializer,
        parameters=[
            OpenApiParameter(
                "Retry-After", int, OpenApiParameter.HEADER, response=[429], required=True, description="Seconds."
            )
        ],
        responses={
            201: CaseUploadAcceptedSerializer,
            400: _error("Invalid; `visit` names the refused visit, `fields` the problem. Nothing was stored."),
            404: OpenApiResponse(
                inline_serializer("CodeNotFound", {"error": serializers.ChoiceField(choices=["code_not_found"])}),
                description="The code is wrong, expired, used or revoked (indistinguishable): "
                '`{"error":"code_not_found"}`.',
            ),
            413: _error("Request body too large."),
            415: _error("Not JSON."),
            429: _error("Too many attempts; see Retry-After."),
        },
        tags=["case uploads"],
    )
    def post(self, request):
        """A confirmed case uploads their visits with a one-time code: all or nothing, proposed for review."""
        upload = CaseUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        try:
            accepted = case_upload_receive(**upload.validated_data)
        except UploadCodeNotFound:
            _wrong_code_noted(request)
            return Response(CODE_NOT_FOUND, status=status.HTTP_404_NOT_FOUND)
        except VisitRejected as rejected:
            raise VisitInvalid(rejected) from rejected
        return Response({"accepted": accepted}, status=status.HTTP_201_CREATED)
