"""Public endpoints: the code landing page, the key set and the revocation list (PROTOCOL §1).

The two JSON documents are DRF views so that any error answers in the API's one format
(leavehome/api.py). They are the same for everyone, so caches and CDNs may keep them.
"""

from django.utils.cache import patch_cache_control
from django.views.generic import TemplateView
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from leavehome.lib.conditional import etag_matches, json_etag
from venues.keys import jwks_document
from venues.selectors import revocations_document


class CodeLandingView(TemplateView):
    """What a plain phone camera opens from a poster; the code, in the fragment, stays on the phone."""

    template_name = "venues/landing.html"


class JwksView(APIView):
    """``GET /.well-known/jwks.json``: the public halves of the active and retired signing keys."""

    @extend_schema(
        responses=inline_serializer("Jwks", {"keys": serializers.ListField(child=serializers.DictField())}),
        tags=["keys"],
    )
    def get(self, request):
        response = Response(jwks_document())
        # Short enough that a rotation reaches phones within minutes.
        patch_cache_control(response, public=True, max_age=300)
        return response


class RevocationsView(APIView):
    """``GET /api/v1/revocations``: which venue code versions are valid; 304 when unchanged."""

    @extend_schema(
        responses=inline_serializer(
            "Revocations",
            {
                "revoked": inline_serializer(
                    "Revocation",
                    {"sub": serializers.UUIDField(), "valid_ver": serializers.IntegerField(allow_null=True)},
                    many=True,
                )
            },
        ),
        tags=["keys"],
    )
    def get(self, request):
        document = revocations_document()
        etag = json_etag(document)
        response = Response(status=304) if etag_matches(request, etag) else Response(document)
        response["ETag"] = etag
        # Phones revalidate every time (cheap with the ETag), so a revocation is seen at once.
        patch_cache_control(response, public=True, no_cache=True)
        return response
