"""docs/protocol.md is kept matching the code: every operation documented, every example real."""

import json
import re
from pathlib import Path

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from notifications.api.serializers import NotificationItemSerializer
from tests.phone.server import bearer, device_with_secret

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
JSON_BLOCKS = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", DOC, flags=re.S)]
HTTP_BLOCKS = re.findall(r"```http\n(.*?)```", DOC, flags=re.S)


def _example(predicate):
    (example,) = [block for block in JSON_BLOCKS if predicate(block)]
    return example


@pytest.mark.django_db
def test_every_operation_of_the_schema_is_documented():
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for path, operations in schema["paths"].items():
        documented_path = path.replace("{notification_id}", "{id}")
        for method in operations:
            if method in {"get", "post", "put", "delete", "patch"}:
                assert f"{method.upper()} {documented_path}" in DOC, (method, path)


def test_every_json_example_parses():
    assert len(JSON_BLOCKS) >= 8


@pytest.mark.django_db
def test_config_example_has_the_real_keys():
    example = _example(lambda block: "slot_seconds" in block)
    assert set(example) == set(APIClient().get("/api/v1/config").json())


def test_notification_example_has_exactly_the_item_fields():
    example = _example(lambda block: "cursor" in block)
    assert set(example) == {"items", "cursor"}
    assert set(example["items"][0]) == set(NotificationItemSerializer().fields)


@pytest.mark.django_db
def test_upload_example_is_accepted_as_written_but_for_the_date():
    (request,) = [block for block in HTTP_BLOCKS if block.startswith("POST /api/v1/visits")]
    example = json.loads(request.split("\n\n", 1)[1])
    example["days"][0]["date"] = timezone.localdate().isoformat()
    _, secret = device_with_secret()
    answer = APIClient().post("/api/v1/visits", example, format="json", **bearer(secret))
    assert answer.status_code == 202
    assert answer.json() == {"accepted": 5}


def test_error_example_uses_the_error_format():
    example = _example(lambda block: "error" in block)
    assert set(example["error"]) == {"code", "message", "fields"}
