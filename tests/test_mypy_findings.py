"""What type-checking the whole package (mypy with django-stubs, issue #14) turned up."""

from types import SimpleNamespace

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.db import models
from django.http import HttpRequest

from django_aws_api_gateway_websockets import protocol
from django_aws_api_gateway_websockets.admin import URL_FIELDS_HTTPS
from django_aws_api_gateway_websockets.db.rows import column_name
from django_aws_api_gateway_websockets.models import ApiGateway
from tests.views import ChatView


def test_a_request_without_a_method_is_405_not_a_crash():
    # HttpRequest.method is None until a handler sets it; dispatch called .lower() on it.
    request = HttpRequest()
    request.META["HTTP_CONNECTIONID"] = "abc="
    response = ChatView.as_view()(request, route="default")
    assert response.status_code == 405


def test_column_name_of_a_concrete_field_and_of_a_field_without_one():
    assert column_name(ApiGateway._meta.pk) == "id"
    assert column_name(User._meta.get_field("username")) == "username"
    with pytest.raises(ValueError):  # e.g. a ForeignObject, whose columns are other fields'
        column_name(SimpleNamespace(column=None))


def test_channel_name_check_narrows_and_still_refuses_non_strings():
    assert protocol.is_valid_channel_name("room-1")
    assert not protocol.is_valid_channel_name(None)
    assert not protocol.is_valid_channel_name(["room-1"])


def test_admin_url_fields_default_to_https():
    assert {models.URLField: {"assume_scheme": "https"}} == URL_FIELDS_HTTPS
    assert admin.site.is_registered(ApiGateway)
