"""`runwsgateway` argument handling: clear errors before anything listens."""

import logging
import socket
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from django_aws_api_gateway_websockets.management.commands.runwsgateway import Command
from django_aws_api_gateway_websockets.models import ApiGateway


@pytest.mark.parametrize(
    "option,value",
    [
        ("--idle-timeout", "0"),
        ("--max-lifetime", "-1"),
        ("--management-latency-ms", "-5"),
        ("--integration-timeout", "0"),
    ],
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


@pytest.mark.django_db
@pytest.mark.parametrize("args,expected", [((), 29), (("--integration-timeout", "1.5"), 1.5)])
def test_integration_timeout_option_reaches_the_gateway(monkeypatch, args, expected):
    seen = []

    async def serve(gateway, stop):
        seen.append(gateway.config.integration_timeout)  # stop as soon as it has started

    monkeypatch.setattr(Command, "_serve", staticmethod(serve))
    log = logging.getLogger("django_aws_api_gateway_websockets.gateway")
    saved = log.handlers[:], log.propagate, log.level  # the command sets the logger up for a terminal
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        call_command("runwsgateway", f"127.0.0.1:{port}", *args, stdout=StringIO(), stderr=StringIO())
    finally:
        log.handlers[:], log.propagate, log.level = saved
    assert seen == [expected]
