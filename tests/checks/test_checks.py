"""System checks: ``manage.py check`` and ``check --deploy`` (docs/checks.md)."""

import importlib
from datetime import timedelta
from io import StringIO

import pytest
from django.core import checks
from django.core.checks.registry import registry
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings
from django.urls import path
from django.utils import timezone

from django_aws_api_gateway_websockets import checks as package_checks
from django_aws_api_gateway_websockets.models import (
    ApiGatewayAdditionalRoute,
    CleanupRun,
    WebSocketSession,
)
from django_aws_api_gateway_websockets.views import WebSocketTokenView
from tests.views import ChatView

SECURE = dict(
    DEBUG=False,
    SESSION_COOKIE_SECURE=True,
    CSRF_COOKIE_SECURE=True,
    CSRF_TRUSTED_ORIGINS=["https://www.example.com"],
)


def ids(deploy=False, **kwargs):
    found = checks.run_checks(include_deployment_checks=deploy, **kwargs)
    # I090 says how each view connects (an Info for every routed view): tests/request_path/test_connect_plan.py
    return sorted({m.id for m in found if m.id.startswith("aws_websockets") and m.id != "aws_websockets.I090"})


def messages(check_id, deploy=True):
    return [m for m in checks.run_checks(include_deployment_checks=deploy) if m.id == check_id]


@pytest.fixture
def secure(settings):
    for name, value in SECURE.items():
        setattr(settings, name, value)
    return settings


@pytest.fixture
def deployed(gateway):
    gateway.api_created, gateway.deployment_id = True, "dep1"
    gateway.save()
    return gateway


@pytest.fixture
def cleaned_up(db):
    for command in ("clear_websocket_sessions", "cleanup_websocket_tokens"):
        CleanupRun.objects.create(command=command)


@pytest.fixture
def no_aws_environment(monkeypatch, tmp_path):
    """No region or credentials from the environment, config files or an instance role."""
    for name in (
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


class WithoutTokenView:
    urlpatterns = [path("ws/<slug:route>", ChatView.as_view())]


class WithUnnamedTokenView:
    urlpatterns = [path("ws/<slug:route>", ChatView.as_view()), path("token/", WebSocketTokenView.as_view())]


# --- check -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_test_project_passes_the_configuration_checks(django_assert_num_queries, django_assert_max_num_queries):
    assert ids() == []
    configuration = [
        check
        for check in registry.get_checks(include_deployment_checks=False)
        if "aws_websockets" in check.tags and checks.Tags.database not in check.tags
    ]
    assert len(configuration) >= 4
    # Even given a database (Django 6 always gives one), these never read it.
    with django_assert_num_queries(0):
        assert [m for check in configuration for m in check(app_configs=None, databases=["default"])] == []
    with django_assert_max_num_queries(2):  # what migrate runs on its database: the migration history
        assert package_checks.check_migration_history(None, databases=["default"]) == []


@override_settings(ROOT_URLCONF="tests.urls_misconfigured")
def test_url_patterns_must_capture_slug_route():
    errors = messages("aws_websockets.E001", deploy=False)
    assert len(errors) == 2
    assert "ws/<str:route>" in errors[0].msg and "<slug:route>" in errors[0].hint


@override_settings(ROOT_URLCONF=WithoutTokenView)
def test_token_protected_views_need_the_token_view_routed():
    [error] = messages("aws_websockets.E002", deploy=False)
    assert "ChatView" in error.msg and "WebSocketTokenView.as_view()" in error.hint


@override_settings(ROOT_URLCONF=WithUnnamedTokenView)
def test_token_view_must_be_reachable_by_its_configured_name():
    assert ids() == ["aws_websockets.W004"]
    with override_settings(WEBSOCKETS={"token_url_name": "elsewhere"}):
        assert "'elsewhere'" in messages("aws_websockets.W004", deploy=False)[0].msg


def test_region_from_settings_or_the_aws_environment(settings, no_aws_environment, monkeypatch):
    settings.AWS_GATEWAY_REGION_NAME = ""
    assert "aws_websockets.W001" in ids()
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")  # boto3's own region is used at runtime too
    settings.AWS_REGION_NAME = ""  # clears the cached session
    assert "aws_websockets.W001" not in ids()


def test_half_configured_credentials_are_an_error(settings):
    settings.AWS_SECRET_ACCESS_KEY = ""
    [error] = messages("aws_websockets.E003", deploy=False)
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in error.msg


def test_permissions_without_token(monkeypatch):
    from tests.views import StaffView

    monkeypatch.setattr(StaffView, "USE_WS_TOKEN", False)
    assert "aws_websockets.W002" in ids()


# --- check --deploy --------------------------------------------------------------------


@pytest.mark.django_db
def test_deploy_checks_on_a_fresh_project(secure):
    assert ids(deploy=True) == ["aws_websockets.W030", "aws_websockets.W040"]


@pytest.mark.django_db
def test_unresolvable_credentials(secure, deployed, cleaned_up, no_aws_environment):
    secure.AWS_ACCESS_KEY_ID = secure.AWS_SECRET_ACCESS_KEY = None  # (assignment clears the cached session)
    assert ids(deploy=True) == ["aws_websockets.W010"]


@pytest.mark.django_db
def test_deploy_checks_on_insecure_settings_and_records(secure, gateway, monkeypatch):
    secure.DEBUG = True
    secure.SESSION_COOKIE_SECURE = False
    secure.CSRF_TRUSTED_ORIGINS = ["http://www.example.com"]
    gateway.integration_secret = ""
    gateway.target_base_endpoint = "http://internal.example.net/ws/"
    gateway.save()
    from tests.views import OpenView

    monkeypatch.setattr(OpenView, "RATE_LIMIT_ENABLED", False)
    assert ids(deploy=True) == [
        "aws_websockets.E034",  # host not in ALLOWED_HOSTS
        "aws_websockets.W003",  # rate limiting off
        "aws_websockets.W020",  # DEBUG
        "aws_websockets.W021",  # insecure cookie
        "aws_websockets.W022",  # an http trusted origin
        "aws_websockets.W031",  # not created in AWS
        "aws_websockets.W032",  # no secret
        "aws_websockets.W033",  # target not https
        "aws_websockets.W035",  # CSRF_TRUSTED_ORIGINS does not cover the target's site
        "aws_websockets.W040",  # never cleaned up
        "aws_websockets.W080",  # DEBUG, and the local origin http://127.0.0.1:8000 is not trusted
    ]
    [origin] = messages("aws_websockets.W035")
    assert "https://internal.example.net" in origin.msg and '"https://internal.example.net"' in origin.hint


@pytest.mark.django_db
def test_healthy_deployment_has_no_warnings(secure, deployed, cleaned_up):
    assert ids(deploy=True) == []


@pytest.mark.django_db
def test_wildcard_trusted_origins_cover_the_site(secure, deployed, cleaned_up):
    secure.CSRF_TRUSTED_ORIGINS = ["https://*.example.com"]
    assert ids(deploy=True) == []


@pytest.mark.django_db
def test_additional_routes_are_checked_like_the_target(secure, deployed, cleaned_up):
    ApiGatewayAdditionalRoute.objects.create(
        api_gateway=deployed, name="Hooks", route_key="hooks", integration_url="http://hooks.internal/ws/hooks"
    )
    assert ids(deploy=True) == ["aws_websockets.E034", "aws_websockets.W033", "aws_websockets.W036"]
    assert "route 'hooks'" in messages("aws_websockets.E034")[0].msg
    assert messages("aws_websockets.W036")[0].hint == f"Run sync_api_gateway --pk {deployed.pk}."


@pytest.mark.django_db
def test_a_record_left_on_a_local_gateway(secure, deployed, cleaned_up):
    deployed.management_endpoint_url = "http://127.0.0.1:8001/production"
    deployed.save()
    assert ids(deploy=True) == ["aws_websockets.W037"]


@pytest.mark.django_db
def test_each_cleanup_command_must_have_run_within_a_day(secure, deployed, cleaned_up):
    CleanupRun.objects.filter(command="clear_websocket_sessions").update(ran_at=timezone.now() - timedelta(days=2))
    [warning] = messages("aws_websockets.W040")
    assert (
        warning.msg.startswith("clear_websocket_sessions did not run") and "cleanup_websocket_tokens" not in warning.msg
    )


@pytest.mark.django_db
def test_stale_sessions(secure, deployed, cleaned_up):
    WebSocketSession.objects.create(connection_id="fresh", api_gateway=deployed)
    WebSocketSession.objects.create(connection_id="old", api_gateway=deployed)
    WebSocketSession.objects.filter(connection_id="old").update(created_on=timezone.now() - timedelta(hours=3))
    [warning] = messages("aws_websockets.W041")
    assert warning.msg.startswith("1 session(s)") and "clear_websocket_sessions --stale" in warning.hint


@pytest.mark.django_db
def test_missing_tables_skip_the_database_checks(secure, deployed, monkeypatch):
    monkeypatch.setattr(CleanupRun._meta, "db_table", "not_migrated_yet")
    [info] = messages("aws_websockets.I039")
    assert "'default'" in info.msg and "migrate" in info.hint
    assert WebSocketSession.objects.count() == 0  # the connection is still usable (PostgreSQL)


@pytest.mark.django_db
def test_manage_py_check_deploy_fails_on_errors_and_names_the_database(secure, deployed, cleaned_up):
    secure.ALLOWED_HOSTS = ["other.example.com"]
    with pytest.raises(SystemCheckError) as failure:
        call_command("check", "--deploy", "--database", "default", "--tag", "aws_websockets", stdout=StringIO())
    assert "aws_websockets.E034" in str(failure.value) and "www.example.com" in str(failure.value)


# --- migrate: the old package's migration history ---------------------------------------


@pytest.fixture
def old_package_history(db):
    """The rows the old package's migrations leave (its 0001_initial shares our name)."""
    from django.db.migrations.recorder import MigrationRecorder

    recorder = MigrationRecorder.Migration.objects
    recorder.create(app="django_aws_api_gateway_websockets", name="0002_rename_author")
    recorder.create(app="django_aws_api_gateway_websockets", name="0009_default_table_names")


def test_old_migration_history_stops_migrate(old_package_history):
    errors = [m for m in checks.run_checks(databases=["default"]) if m.id == "aws_websockets.E038"]
    assert len(errors) == 1
    assert "0002_rename_author, 0009_default_table_names" in errors[0].msg
    assert "docs/upgrading.md" in errors[0].hint
    with pytest.raises(SystemCheckError, match="E038"):
        call_command("migrate", "django_aws_api_gateway_websockets", verbosity=0, skip_checks=False)


@pytest.mark.django_db
def test_own_migration_history_passes():
    # The test database was migrated with this package's migrations only.
    assert "aws_websockets.E038" not in ids(databases=["default"])


def test_migration_history_is_not_read_without_a_database(old_package_history, django_assert_num_queries):
    # runserver and plain `check` name no database: nothing is queried, nothing reported.
    with django_assert_num_queries(0):
        assert package_checks.check_migration_history(None, databases=None) == []
    assert "aws_websockets.E038" not in ids()


def test_migration_history_follows_migration_modules(old_package_history, settings):
    # A project that keeps this app's migrations elsewhere (or disables them) is not flagged
    # for names our own package does not ship.
    settings.MIGRATION_MODULES = {"django_aws_api_gateway_websockets": None}
    assert "aws_websockets.E038" not in ids(databases=["default"])


# --- check --deploy: weak configurations ------------------------------------------------


@pytest.mark.django_db
def test_short_integration_secret(secure, deployed, cleaned_up):
    deployed.integration_secret = "s3cr3t-" + "x" * 24  # 31 characters
    deployed.save()
    [warning] = messages("aws_websockets.W045")
    assert f"(pk {deployed.pk})" in warning.msg and "31 characters" in warning.msg
    assert deployed.integration_secret not in warning.msg + warning.hint
    assert f"--pk {deployed.pk} --rotate-secret" in warning.hint
    deployed.integration_secret = "x" * 32
    deployed.save()
    assert ids(deploy=True) == []


@pytest.mark.django_db
def test_empty_secret_is_only_w032(secure, deployed, cleaned_up):
    deployed.integration_secret = ""
    deployed.save()
    assert ids(deploy=True) == ["aws_websockets.W032"]


@pytest.mark.django_db
def test_records_sharing_a_secret(secure, deployed, cleaned_up):
    from django_aws_api_gateway_websockets.models import ApiGateway

    secret = deployed.integration_secret
    copies = [
        ApiGateway.objects.create(
            api_name=f"copy{n}",
            api_id=f"copy{n}id",
            region="eu-west-1",
            api_created=True,
            deployment_id="d",
            target_base_endpoint="https://www.example.com/ws/",
            integration_secret=secret,
        )
        for n in (1, 2)
    ]
    ApiGateway.objects.create(  # its own secret: not named
        api_name="other",
        api_id="otherid",
        region="eu-west-1",
        api_created=True,
        deployment_id="d",
        target_base_endpoint="https://www.example.com/ws/",
    )
    assert ids(deploy=True) == ["aws_websockets.W046"]
    [warning] = messages("aws_websockets.W046")
    pks = sorted([deployed.pk] + [c.pk for c in copies])
    assert f"records {pks[0]}, {pks[1]}, {pks[2]} share" in warning.msg
    assert f"for N in {pks[1]}, {pks[2]}." in warning.hint
    assert secret not in warning.msg + warning.hint


@pytest.mark.django_db
def test_a_served_view_without_origin_check(secure, deployed, cleaned_up, monkeypatch):
    monkeypatch.setattr(ChatView, "CHECK_ORIGIN", False)
    [warning] = messages("aws_websockets.W047")
    assert "ChatView" in warning.msg and "CHECK_ORIGIN = True" in warning.hint
    assert "aws_websockets.W047" not in ids()  # a deployment concern only


@pytest.mark.django_db
def test_permissions_without_token_are_reported_once_by_the_deploy_run(secure, deployed, cleaned_up, monkeypatch):
    from tests.views import StaffView

    monkeypatch.setattr(StaffView, "USE_WS_TOKEN", False)
    [warning] = messages("aws_websockets.W002")  # once: check --deploy runs the plain checks too
    assert "StaffView" in warning.msg
    assert ids(deploy=True) == ["aws_websockets.W002"]


@pytest.mark.django_db
def test_long_token_lifetime(secure, deployed, cleaned_up):
    secure.WEBSOCKETS = {"token_expiry_seconds": 3600}
    assert ids(deploy=True) == []
    secure.WEBSOCKETS = {"token_expiry_seconds": 3601}
    assert ids(deploy=True) == ["aws_websockets.W048"]
    assert "3601" in messages("aws_websockets.W048")[0].msg
    assert "aws_websockets.W048" not in ids()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "max_attempts, window, weak",
    [(1000, 1, False), (1001, 1, True), (2000, 2, False), (2001, 2, True), (20, 0, True), (10**9, 60, True)],
)
def test_rate_limit_settings_that_cannot_limit(secure, deployed, cleaned_up, max_attempts, window, weak):
    secure.WEBSOCKETS = {"rate_limit_max_attempts": max_attempts, "rate_limit_window_minutes": window}
    assert ids(deploy=True) == (["aws_websockets.W049"] if weak else [])
    if weak:
        [warning] = messages("aws_websockets.W049")
        assert "WEBSOCKETS" in warning.msg and "cannot limit" in warning.msg


@pytest.mark.django_db
def test_a_served_view_rate_limit_that_cannot_limit(secure, deployed, cleaned_up, monkeypatch):
    from tests.views import OpenView

    monkeypatch.setattr(ChatView, "RATE_LIMIT_MAX_ATTEMPTS", 5000)
    monkeypatch.setattr(OpenView, "RATE_LIMIT_WINDOW_MINUTES", -1)
    found = messages("aws_websockets.W049")
    assert sorted(m.msg.split(" (")[0] for m in found) == [
        "The connect rate limit of ChatView",
        "The connect rate limit of OpenView",
    ]
    assert any("5000 attempts per 1 minute(s)" in m.msg for m in found)
    # The view's own window makes it fine; disabled limiting is W003's business.
    monkeypatch.setattr(ChatView, "RATE_LIMIT_WINDOW_MINUTES", 10)
    monkeypatch.setattr(OpenView, "RATE_LIMIT_ENABLED", False)
    assert ids(deploy=True) == ["aws_websockets.W003"]


@pytest.mark.django_db
def test_gateway_cache_longer_than_the_secret_grace_period(secure, deployed, cleaned_up):
    secure.WEBSOCKETS = {"gateway_cache_seconds": 600, "secret_grace_seconds": 600}
    assert ids(deploy=True) == []
    secure.WEBSOCKETS = {"gateway_cache_seconds": 30, "secret_grace_seconds": 10}
    assert ids(deploy=True) == ["aws_websockets.W050"]
    [warning] = messages("aws_websockets.W050")
    assert "(30)" in warning.msg and "(10)" in warning.msg


@pytest.mark.django_db
def test_invalid_settings_do_not_break_the_deploy_checks(secure, deployed, cleaned_up):
    # E044 reports the values; the deploy checks judge the defaults instead of failing.
    secure.WEBSOCKETS = {"token_expiry_seconds": "forever", "rate_limit_window_minutes": -1}
    assert ids(deploy=True) == ["aws_websockets.E044"]
    secure.WEBSOCKETS = "not a dict"
    assert ids(deploy=True) == ["aws_websockets.E042"]


# --- docs/checks.md lists every id, each number once -------------------------------------


def test_every_check_id_is_documented_and_numbers_are_not_reused():
    """The ids defined in the checks package (``messages.REGISTRY``) are the ids docs/checks.md's
    table lists, and vice versa; from E038 on, a number is used by one id only."""
    import re
    from pathlib import Path

    from django_aws_api_gateway_websockets.checks.messages import REGISTRY

    found = {check_id.rsplit(".", 1)[1] for check_id in REGISTRY}
    new = {"E042", "W043", "E044", "W045", "W046", "W047", "W048", "W049", "W050", "W070", "E071"}
    assert new <= found
    numbers = [check_id[1:] for check_id in found]
    assert [n for n in numbers if numbers.count(n) > 1 and int(n) >= 38] == []  # E038, I039...: one id each
    docs = (Path(__file__).resolve().parents[2] / "docs" / "checks.md").read_text()
    documented = set(re.findall(r"^\| `aws_websockets\.([EWI]\d{3})`", docs, re.MULTILINE))
    assert sorted(found - documented) == [], "defined, not in docs/checks.md's table"
    assert sorted(documented - found) == [], "in docs/checks.md's table, defined nowhere"
    from django_aws_api_gateway_websockets.conf import DEFAULTS

    values = docs.split("### WEBSOCKETS values", 1)[1]
    assert [key for key in DEFAULTS if f"`{key}`" not in values] == []


def test_check_ids_are_written_only_in_their_message_constants():
    """No check builds a message with an id of its own (``Warning(..., id="aws_websockets.W0NN")``):
    every id is a ``Template`` constant of the checks package, named after its id."""
    import ast
    import re
    from pathlib import Path

    import django_aws_api_gateway_websockets as package
    from django_aws_api_gateway_websockets.checks.messages import REGISTRY, Template

    root = Path(package.__file__).resolve().parent
    written = []
    for source in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            if (
                isinstance(node, ast.keyword)
                and node.arg == "id"
                and isinstance(node.value, ast.Constant | ast.JoinedStr)  # a literal id, not id=pk
            ):
                written.append(f"{source.relative_to(root)}:{node.value.lineno}")
    assert written == []
    for check_id, template in REGISTRY.items():
        assert isinstance(template, Template)
        module = importlib.import_module(template.module)
        assert getattr(module, template.code) is template, check_id
        assert re.fullmatch(r"aws_websockets\.[EWI]\d{3}", check_id)


def test_a_message_template_takes_its_level_from_its_id_and_an_id_is_defined_once():
    from django_aws_api_gateway_websockets.checks.messages import REGISTRY, Template

    try:
        template = Template("I998", {"default": "{n} things.", "one": "One thing."}, hint="See {where}.")
        info = template(n=2, where="docs")
        assert (type(info), info.id, info.msg, info.hint) == (
            checks.Info,
            "aws_websockets.I998",
            "2 things.",
            "See docs.",
        )
        assert template("one", where="there").msg == "One thing."
        assert Template("E999", "{problem}")(problem="a {brace}").msg == "a {brace}"  # values are not re-read
        with pytest.raises(ValueError, match="aws_websockets.I998 is defined twice"):
            Template("I998", "again")
    finally:
        REGISTRY.pop("aws_websockets.I998", None)
        REGISTRY.pop("aws_websockets.E999", None)


def test_importing_the_checks_package_registers_every_topic():
    """``apps.ready`` imports ``checks``; the send checks moved there from conf.py (W070, E071)."""
    from django.core.checks.registry import registry

    from django_aws_api_gateway_websockets import checks as package

    registered = {check.__module__ for check in registry.registered_checks | registry.deployment_checks}
    topics = {
        f"{package.__name__}.{name}"
        for name in (
            "views",
            "legacy_views",
            "settings",
            "security",
            "rate_limits",
            "sending",
            "local_development",
            "migrations",
            "database",
        )
    }
    assert topics <= registered
    assert not any(module == "django_aws_api_gateway_websockets.conf" for module in registered)


@pytest.mark.django_db
def test_a_local_development_record_is_only_an_info(secure, deployed, cleaned_up):
    from django_aws_api_gateway_websockets.gateway.records import new_local_api_id
    from django_aws_api_gateway_websockets.models import ApiGateway

    ApiGateway.objects.create(
        api_name="chat-local",
        api_id=new_local_api_id(),
        target_base_endpoint="http://127.0.0.1:8000/ws/",
        management_endpoint_url="http://127.0.0.1:8001/local",
        integration_secret="",
    )
    assert ids(deploy=True) == ["aws_websockets.I052"]
