"""Every service error answers on the API in the one error format, with its own stable code."""

import importlib
import pkgutil

import pytest
from django.core.exceptions import ValidationError
from rest_framework.views import APIView

import notifications
import venues
from leavehome import errors
from leavehome.api import exception_handler
from notifications.case_uploads import VisitRejected
from notifications.visits import DeviceDeleted
from venues.imports import ImportInvalid, ImportProblem
from venues.keys import NoActiveSigningKey


def _all_subclasses(cls):
    for subclass in cls.__subclasses__():
        yield subclass
        yield from _all_subclasses(subclass)


def _service_errors():
    for package in (venues, notifications):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if ".migrations" not in module.name and ".management" not in module.name:
                importlib.import_module(module.name)
    return sorted(set(_all_subclasses(errors.ServiceError)), key=lambda cls: cls.__qualname__)


def _instance(cls):
    special = {
        NoActiveSigningKey: lambda: NoActiveSigningKey(),
        ImportInvalid: lambda: ImportInvalid([ImportProblem(2, "name_en", "Required.")]),
        DeviceDeleted: lambda: DeviceDeleted(),
        VisitRejected: lambda: VisitRejected(1, "t_out", "bad_times", "t_out must be after t_in."),
    }
    return special.get(cls, lambda: cls("Not now."))()


def _answer(error):
    response = exception_handler(error, {"view": APIView()})
    assert response is not None, f"{type(error).__name__} became a 500"
    return response


def test_every_service_error_is_known():
    names = {cls.__name__ for cls in _service_errors()}
    assert {"CaseStateError", "VenueStateError", "NoActiveSigningKey", "SigningKeyError", "ImportInvalid"} <= names
    assert "DeviceDeleted" in names


@pytest.mark.parametrize("cls", _service_errors(), ids=lambda cls: cls.__name__)
def test_a_service_error_maps_to_its_code_and_status(cls):
    error = _instance(cls)
    response = _answer(error)
    assert response.status_code == cls.status
    body = response.data["error"]
    assert body["code"] == error.code  # the class's code, or the instance's reason
    assert error.code != "invalid"  # a code of its own, stable for apps and operators
    assert body["message"] and "[" not in body["message"]  # the text, not a list's repr


def test_a_field_validation_error_from_a_service_names_its_paths():
    response = _answer(ValidationError({"subscription.keys.auth": ["Must be a base64url 16-byte secret."]}))
    assert response.status_code == 400
    assert response.data["error"]["fields"] == {"subscription.keys.auth": ["Must be a base64url 16-byte secret."]}
    assert response.data["error"]["code"] == "invalid"


def test_a_plain_validation_error_is_a_400_on_the_body():
    response = _answer(ValidationError("Not a JSON object."))
    assert (response.status_code, response.data["error"]["fields"]) == (400, {"_": ["Not a JSON object."]})
