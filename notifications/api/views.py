"""The phone app's endpoints (PROTOCOL §4): each validates, calls one service or selector, answers.

Errors from every view use the one format of leavehome/api.py; the statuses each view can
answer are declared with extend_schema so the OpenAPI document matches what it does.
"""

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from leavehome.lib.conditional import etag_matches, json_etag
from notifications import feed
from notifications.api import serializers as s
from notifications.api.authentication import DeviceAuthentication, IsDevice
from notifications.api.parsers import BoundedJSONParser
from notifications.api.throttling import (
    DeviceReadThrottle,
    DeviceRegisterIPThrottle,
)
from notifications.devices import device_delete, device_register
from notifications.push.channels import push_channel_clear, push_channel_set
from notifications.selectors import device_notifications, notification_cursor_now
from notifications.tokens import SLOT_SECONDS
from venues.codes import qr_prefix


def error_responses(*codes):
    """The OpenAPI answers of these error statuses, in the one error format."""
    descriptions = {
        400: "Invalid request; `fields` names each problem.",
        401: "Missing or unknown device secret.",
        404: "Not found (or not this device's).",
        413: "Request body too large.",
        415: "Not JSON.",
        429: "Too many requests; see Retry-After.",
    }
    return {code: OpenApiResponse(s.ErrorSerializer, description=descriptions[code]) for code in codes}


RETRY_AFTER = OpenApiParameter(
    "Retry-After", int, OpenApiParameter.HEADER, response=[429], required=True, description="Seconds to wait."
)


class PhoneAPIView(APIView):
    """An endpoint of the phone API: JSON bodies within the size limit."""

    parser_classes = [BoundedJSONParser]


class DeviceAPIView(PhoneAPIView):
    """An endpoint for a registered device (``Authorization: Bearer {SECRET}``)."""

    authentication_classes = [DeviceAuthentication]
    permission_classes = [IsDevice]

    def finalize_response(self, request, response, *args, **kwargs):
        # A device's answers are its own (notifications name venues and times): no cache,
        # shared or private, may keep them.
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        return response


class ConfigView(PhoneAPIView):
    @extend_schema(operation_id="config", responses={200: s.ConfigSerializer}, tags=["app"])
    def get(self, request):
        """The protocol parameters the app needs (PROTOCOL §4)."""
        config = {
            "protocol": "lhs1",
            "slot_seconds": SLOT_SECONDS,
            "time_zone": settings.TIME_ZONE,
            "default_visit_seconds": settings.LEAVEHOME_DEFAULT_VISIT_SECONDS,
            "max_visit_seconds": settings.LEAVEHOME_MAX_VISIT_SECONDS,
            "retention_days": settings.LEAVEHOME_RETENTION_DAYS,
            "max_tokens_per_upload": settings.LEAVEHOME_MAX_TOKENS_PER_UPLOAD,
            "venue_code_prefix": qr_prefix(),
            "case_upload_code_hours": settings.LEAVEHOME_CASE_UPLOAD_CODE_HOURS,
            "max_case_upload_visits": settings.LEAVEHOME_MAX_CASE_UPLOAD_VISITS,
        }
        return Response(s.ConfigSerializer(config).data)


class DeviceRegisterView(PhoneAPIView):
    throttle_classes = [DeviceRegisterIPThrottle]

    @extend_schema(
        operation_id="device_register",
        request=s.EmptyBodySerializer,
        parameters=[RETRY_AFTER],
        responses={201: s.DeviceCreatedSerializer, **error_responses(400, 413, 415, 429)},
        tags=["devices"],
    )
    def post(self, request):
        """Register a device; the answer holds its secret, shown this once."""
        # No body parses as an empty QueryDict; a JSON list must still be refused.
        body = request.data if request.data or isinstance(request.data, list) else {}
        s.EmptyBodySerializer(data=body).is_valid(raise_exception=True)
        device, secret = device_register()
        body = s.DeviceCreatedSerializer({"device_id": device.pk, "token": secret}).data
        return Response(body, status=status.HTTP_201_CREATED)


class DeviceMeView(DeviceAPIView):
    @extend_schema(operation_id="device_delete", responses={204: None, **error_responses(401)}, tags=["devices"])
    def delete(self, request):
        """Delete this device and every token, notification and push channel of it."""
        device_delete(request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


_PUSH_BODY = PolymorphicProxySerializer(
    component_name="PushChannel",
    serializers={
        "webpush": s.WebPushChannelSerializer,
        "fcm": s.FcmChannelSerializer,
        "apns": s.ApnsChannelSerializer,
    },
    resource_type_field_name="kind",
)


class DevicePushView(DeviceAPIView):
    @extend_schema(
        operation_id="device_push_set",
        request=_PUSH_BODY,
        responses={204: None, **error_responses(400, 401, 413, 415)},
        tags=["devices"],
    )
    def put(self, request):
        """Set (or replace) how to wake this device."""
        push_channel_set(device=request.user, data=request.data)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        operation_id="device_push_clear", request=None, responses={204: None, **error_responses(401)}, tags=["devices"]
    )
    def delete(self, request):
        """Stop pushing to this device; the app polls instead."""
        push_channel_clear(device=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class NotificationListView(DeviceAPIView):
    throttle_classes = [DeviceReadThrottle]

    @extend_schema(
        operation_id="notifications_list",
        parameters=[s.NotificationQuerySerializer, RETRY_AFTER],
        responses={200: s.NotificationListSerializer, **error_responses(400, 401, 429)},
        tags=["notifications"],
    )
    def get(self, request):
        """This device's notifications, newest first; with ``since``, only those changed after it."""
        query = s.NotificationQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        cursor = notification_cursor_now()  # before the read: what commits meanwhile is after it
        items = device_notifications(device=request.user, since=query.validated_data.get("since"))
        body = {"items": items, "cursor": cursor}
        return Response(s.NotificationListSerializer(body).data)


class NotificationDetailView(DeviceAPIView):
    throttle_classes = [DeviceReadThrottle]

    @extend_schema(
        operation_id="notifications_read",
        parameters=[OpenApiParameter("notification_id", int, OpenApiParameter.PATH), RETRY_AFTER],
        responses={200: s.NotificationItemSerializer, **error_responses(401, 404, 429)},
        tags=["notifications"],
    )
    def get(self, request, notification_id: str):
        """One of this device's notifications; another device's answers 404, like a missing one."""
        # The id is matched as text in the URL so a malformed one gets this API's JSON 404,
        # not Django's HTML page.
        item = None
        if notification_id.isascii() and notification_id.isdigit() and len(notification_id) < 19:
            item = device_notifications(device=request.user).filter(pk=int(notification_id)).first()
        if item is None:
            raise NotFound("No such notification.")
        return Response(s.NotificationItemSerializer(item).data)


class ExposureFeedView(PhoneAPIView):
    """The public exposure feed; no device secret, so shared caches can serve it."""

    @extend_schema(
        operation_id="exposures_page",
        parameters=[
            s.ExposureQuerySerializer,
            OpenApiParameter("If-None-Match", str, OpenApiParameter.HEADER, required=False),
            OpenApiParameter(
                "ETag",
                str,
                OpenApiParameter.HEADER,
                response=[200, 304],
                required=True,
                description="Send back in If-None-Match.",
            ),
            OpenApiParameter(
                "Cache-Control",
                str,
                OpenApiParameter.HEADER,
                response=[200, 304],
                required=True,
                description="Closed page: public, max-age=31536000, immutable; open page: public, max-age=60.",
            ),
        ],
        responses={
            200: s.ExposurePageSerializer,
            304: OpenApiResponse(description="Not modified (If-None-Match matched the ETag)."),
            **error_responses(400),
        },
        tags=["exposures"],
    )
    def get(self, request):
        """One page of published exposure tokens, oldest first; without ``page``, the oldest retained page."""
        query = s.ExposureQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        number = query.validated_data.get("page")
        if number is None:
            number = feed.exposure_feed_first_page()
        page = feed.exposure_feed_page(number)
        body = s.ExposurePageSerializer(
            {
                "page": page.number,
                "items": page.items,
                "closed": page.closed,
                "next": number + 1 if page.closed else number,
            }
        ).data
        etag = json_etag(body)
        # Only a closed page asked for by number is immutable; the page-less URL means "the
        # oldest retained page", which moves as old items are purged.
        immutable = page.closed and "page" in query.validated_data
        cache_control = "public, max-age=31536000, immutable" if immutable else "public, max-age=60"
        headers = {"ETag": etag, "Cache-Control": cache_control}
        if etag_matches(request, etag):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers=headers)
        return Response(body, headers=headers)
