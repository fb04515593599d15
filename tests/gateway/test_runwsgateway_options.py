"""`runwsgateway` argument handling: clear errors before anything listens."""

import pytest
from django.core.management import CommandError, call_command

from django_aws_api_gateway_websockets.management.commands.runwsgateway import Command
from django_aws_api_gateway_websockets.models import ApiGateway


@pytest.mark.parametrize(
    "option,value", [("--idle-timeout", "0"), ("--max-lifetime", "-1"), ("--management-latency-ms", "-5")]
)
def test_bad_numbers_are_refused(option, value):
    with pytest.raises(CommandError, match=option):
        call_command("runwsgateway", option, value)


@pytest.mark.django_db
def test_bad_target_is_refused_and_the_record_untouched():
    record = ApiGateway.objects.create(api_name="r", api_id="rid")
    with pytest.raises(CommandError, match="http"):
        call_command("runwsgateway", "--target", "127.0.0.1:8000/ws/")
    record.refresh_from_db()
    assert record.management_endpoint_url == ""


@pytest.mark.parametrize(
    "value,expected",
    [("8002", ("127.0.0.1", 8002)), ("0.0.0.0:9000", ("0.0.0.0", 9000)), ("[::1]:8001", ("::1", 8001))],
)
def test_addrport(value, expected):
    assert Command._parse_addrport(value) == expected


@pytest.mark.parametrize("value", ["localhost:http", "70000", "127.0.0.1:"])
def test_bad_addrport(value):
    with pytest.raises(CommandError):
        Command._parse_addrport(value)


@pytest.mark.parametrize(
    "host,reachable", [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"), ("::", "[::1]"), ("::1", "[::1]")]
)
def test_the_endpoint_written_to_the_record_is_reachable(host, reachable):
    assert Command._reachable(host) == reachable


@pytest.mark.django_db
def test_an_unmigrated_database_is_a_one_line_hint(monkeypatch):
    from django.db import OperationalError

    def no_table(api):
        raise OperationalError("no such table: django_aws_api_gateway_websockets_apigateway")

    monkeypatch.setattr(Command, "_resolve_record", staticmethod(no_table))
    with pytest.raises(CommandError, match=r"Run `manage.py migrate` first"):
        call_command("runwsgateway", "127.0.0.1:18555")
