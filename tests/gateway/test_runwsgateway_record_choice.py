"""Which record `runwsgateway` writes to, its warnings, and a busy port (in-process runs)."""

import logging
import os
import socket
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.template import Context, Template

from django_aws_api_gateway_websockets.gateway import GatewayConfig, records
from django_aws_api_gateway_websockets.management.commands import runwsgateway
from django_aws_api_gateway_websockets.models import ApiGateway, ApiGatewayAdditionalRoute

SECRET = "sup3r-s3cr3t-value"


def test_the_config_repr_never_shows_the_secret():
    config = GatewayConfig(api_id="a1", target_base_endpoint="http://x/ws/", secret=SECRET)
    assert SECRET not in repr(config) and SECRET not in str(config)
    assert "a1" in repr(config)
    assert config.secret == SECRET


@pytest.mark.parametrize(
    "host,loopback",
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("10.0.0.1", False),
        ("myhost", False),
    ],
)
def test_loopback_hosts(host, loopback):
    assert records.is_loopback_host(host) is loopback


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Run:
    """One in-process `runwsgateway` that stops as soon as it serves, noting the DB meanwhile."""

    def __init__(self, monkeypatch):
        self.during = None
        banner = runwsgateway.Command._banner

        def note_and_banner(*args):
            self.during = {r.api_name: r for r in ApiGateway.objects.all()}  # the gateway listens now
            return banner(*args)

        async def serve(gateway, stop):
            pass  # a run that is stopped as soon as it has started

        monkeypatch.setattr(runwsgateway.Command, "_banner", staticmethod(note_and_banner))
        monkeypatch.setattr(runwsgateway.Command, "_serve", staticmethod(serve))

    def __call__(self, *args, addr=None):
        self.stdout, self.stderr = StringIO(), StringIO()
        self.port = free_port()
        call_command("runwsgateway", addr or f"127.0.0.1:{self.port}", *args, stdout=self.stdout, stderr=self.stderr)
        return self


@pytest.fixture
def run(monkeypatch):
    # The command sets up the gateway's logger for a terminal: undo it for the next tests.
    log = logging.getLogger("django_aws_api_gateway_websockets.gateway")
    saved = log.handlers[:], log.propagate, log.level
    yield Run(monkeypatch)
    log.handlers[:], log.propagate, log.level = saved


def deployed(**fields):
    values = dict(
        api_name="prod",
        api_id="abc123defg",
        api_created=True,
        deployment_id="dep1",
        api_endpoint="wss://abc123defg.execute-api.eu-west-1.amazonaws.com",
        stage_name="production",
        region="eu-west-1",
        target_base_endpoint="https://www.example.com/ws/",
        route_selection_expression="$request.body.kind",
        default_route_two_way=True,
        default_channel_name="lobby",
    )
    values.update(fields)
    return ApiGateway.objects.create(**values)


def row(record):
    return ApiGateway.objects.filter(pk=record.pk).values().get()


@pytest.mark.django_db
@pytest.mark.parametrize("api", [None, "prod", "abc123defg"])
def test_an_aws_record_is_played_by_a_companion_and_never_written(run, api):
    real = deployed()
    ApiGatewayAdditionalRoute.objects.create(
        api_gateway=real,
        name="chat",
        route_key="chat",
        integration_url="https://www.example.com/ws/chat",
        deployed=True,
    )
    before = row(real)
    run(*(["--api", api] if api else []))
    companion = run.during["prod-local"]
    assert run.during["prod"].management_endpoint_url == ""  # while it ran, too
    assert companion.management_endpoint_url == f"http://127.0.0.1:{run.port}/production"
    assert row(real) == before
    assert records.is_local_record(companion)
    assert companion.api_id.startswith("local") and companion.api_id != real.api_id
    assert companion.integration_secret and companion.integration_secret != real.integration_secret
    assert (
        companion.stage_name,
        companion.target_base_endpoint,
        companion.route_selection_expression,
        companion.default_route_two_way,
        companion.default_channel_name,
    ) == ("production", "https://www.example.com/ws/", "$request.body.kind", True, "lobby")
    assert companion.region == "eu-west-1"  # AWS_GATEWAY_REGION_NAME of tests/settings.py
    assert not companion.additional_routes.exists()  # routes are read from the real record
    banner = run.stdout.getvalue()
    assert "prod-local" in banner and "left untouched" in banner
    assert "Route chat: https://www.example.com/ws/chat" in banner
    # The companion's endpoint is restored on exit; the companion is reused by the next run.
    companion.refresh_from_db()
    assert companion.management_endpoint_url == ""
    run()
    assert run.during["prod-local"].pk == companion.pk and run.during["prod-local"].api_id == companion.api_id
    assert row(real) == before
    assert ApiGateway.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields",
    [
        {"api_created": False},
        {"api_created": False, "api_endpoint": ""},
        {
            "custom_domain_created": True,
            "api_created": False,
            "api_endpoint": "",
            "management_endpoint_url": "https://abc.example.com/prod",
        },
    ],
)
def test_what_counts_as_an_aws_record(run, fields):
    real = deployed(**fields)
    before = row(real)
    run("--api", "prod")
    assert "prod-local" in run.during
    assert row(real) == before


@pytest.mark.django_db
def test_a_local_record_is_served_directly(run):
    local = ApiGateway.objects.create(
        api_name="dev", api_id="dev0000001", stage_name="local", management_endpoint_url="http://127.0.0.1:8001/local"
    )
    run()
    assert set(run.during) == {"dev"}
    assert run.during["dev"].management_endpoint_url == f"http://127.0.0.1:{run.port}/local"
    local.refresh_from_db()
    assert local.management_endpoint_url == "http://127.0.0.1:8001/local"  # restored


@pytest.mark.django_db
def test_a_companion_name_taken_by_an_aws_record_is_an_error(run):
    real = deployed()
    other = deployed(api_name="prod-local", api_id="zzz999zzzz")
    before = row(real), row(other)
    with pytest.raises(CommandError, match="prod-local"):
        run("--api", "prod")
    assert (row(real), row(other)) == before
    with pytest.raises(CommandError, match="Several"):
        run()


@pytest.mark.django_db
@pytest.mark.parametrize("region", ["ap-south-1", "ca-central-1"])
def test_the_record_created_when_there_is_none_uses_the_configured_region(run, settings, region):
    settings.AWS_GATEWAY_REGION_NAME = region
    run()
    (created,) = run.during.values()
    assert created.region == region and created.api_id.startswith("local") and records.is_local_record(created)


@pytest.mark.django_db
def test_a_busy_port_fails_before_the_banner_and_writes_nothing(run):
    local = ApiGateway.objects.create(api_name="dev", api_id="dev0000001", stage_name="local")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CommandError, match="Cannot listen") as refused:
            run(addr=f"127.0.0.1:{port}")
    # Says what holds a port on a developer's machine, and what to do (issue #23).
    assert str(refused.value).endswith(
        f". Another runwsgateway or `make demo` is running: stop it or pass another port"
        f" (manage.py runwsgateway {port + 1})"
    )
    assert "Quit with CONTROL-C" not in run.stdout.getvalue()
    assert "Local API Gateway" not in run.stdout.getvalue()
    assert run.during is None
    local.refresh_from_db()
    assert local.management_endpoint_url == ""


@pytest.mark.django_db
@pytest.mark.parametrize(
    "addr,debug,warned",
    [
        ("127.0.0.1", True, False),
        ("0.0.0.0", True, True),
        ("::", True, True),
        ("127.0.0.1", False, True),
        ("localhost", True, False),
    ],
)
def test_a_loud_warning_when_others_can_reach_the_management_api(run, settings, addr, debug, warned):
    settings.DEBUG = debug
    ApiGateway.objects.create(api_name="dev", api_id="dev0000001", stage_name="local")
    host = f"[{addr}]" if ":" in addr else addr
    run(addr=f"{host}:{free_port()}")
    err = run.stderr.getvalue()
    assert ("NO authentication" in err) is warned
    if warned:
        assert ("DEBUG is False" in err) is (not debug)
        assert (f"listens on {addr}," in err) is (not records.is_loopback_host(addr))


def render(source, **context):
    return Template("{% load websockets %}" + source).render(Context(context))


@pytest.mark.django_db
def test_the_template_tag_uses_the_served_companion_in_debug_only(settings):
    real = deployed()
    route = ApiGatewayAdditionalRoute.objects.create(
        api_gateway=real, name="c", route_key="chat", integration_url="https://www.example.com/ws/chat"
    )
    companion, _ = records.get_or_create_companion(real)
    aws_url = "wss://abc123defg.execute-api.eu-west-1.amazonaws.com/production"
    settings.DEBUG = True
    for source in ("{% websocket_config %}", "{% websocket_config g %}", "{% websocket_config r %}"):
        assert aws_url in render(source, g=real, r=route)  # the companion is not served
    ApiGateway.objects.filter(pk=companion.pk).update(management_endpoint_url="http://127.0.0.1:8001/production")
    for source in ("{% websocket_config %}", "{% websocket_config g %}", "{% websocket_config r %}"):
        assert "ws://127.0.0.1:8001/production" in render(source, g=real, r=route)
    settings.DEBUG = False
    for source in ("{% websocket_config %}", "{% websocket_config g %}", "{% websocket_config r %}"):
        assert aws_url in render(source, g=real, r=route)


@pytest.mark.django_db
def test_a_second_gateway_for_the_record_says_it_takes_it_over_and_which_process_serves_it(run):
    """Issue #23: a second runwsgateway on another port silently took the record over."""
    with socket.socket() as first:  # the first gateway, still listening
        first.bind(("127.0.0.1", 0))
        first.listen()
        previous = f"http://127.0.0.1:{first.getsockname()[1]}/local"
        ApiGateway.objects.create(
            api_name="dev", api_id="dev0000001", stage_name="local", management_endpoint_url=previous
        )
        run()
    warning = run.stderr.getvalue()
    assert (
        f"Record {ApiGateway.objects.get().pk} (dev) was served by another local gateway, still running at {previous}"
        in warning
    )
    assert f"this process (pid {os.getpid()}) serves it from now on" in warning
    assert f"On exit, the record goes back to {previous}." in warning
    assert f"served by this process (pid {os.getpid()})" in run.stdout.getvalue()
    assert ApiGateway.objects.get().management_endpoint_url == previous  # handed back on exit


@pytest.mark.django_db
def test_a_url_left_by_a_gateway_that_is_gone_is_taken_silently(run):
    with socket.socket() as gone:
        gone.bind(("127.0.0.1", 0))
        previous = f"http://127.0.0.1:{gone.getsockname()[1]}/local"  # bound, never listening
        ApiGateway.objects.create(
            api_name="dev", api_id="dev0000001", stage_name="local", management_endpoint_url=previous
        )
        run()
    assert "was served by another local gateway" not in run.stderr.getvalue()
