"""The management commands' lowercase names, and the 4.x camelCase names kept as aliases."""

import importlib
from io import StringIO

import pytest
from django.core.management import ManagementUtility, call_command, get_commands

from django_aws_api_gateway_websockets.management.commands import runwsgateway

PACKAGE = "django_aws_api_gateway_websockets.management.commands"
APP = "django_aws_api_gateway_websockets"

#: lowercase name -> the 4.x name that stays an alias
ALIASES = {
    "websocket_stats": "websocketStats",
    "sync_api_gateway": "syncApiGateway",
    "create_api_gateway": "createApiGateway",
    "delete_api_gateway": "deleteApiGateway",
    "create_custom_domain": "createCustomDomain",
    "cleanup_websocket_tokens": "cleanupWebSocketTokens",
    "clear_websocket_sessions": "clearWebSocketSessions",
    "upgrade_from_old_package": "upgradeFromOldPackage",
    "websocket_iam_policy": "websocketIamPolicy",
    "websocket_smoke_test": "websocketSmokeTest",
}


@pytest.mark.parametrize(("name", "alias"), ALIASES.items())
def test_alias_is_the_same_command_class(name, alias):
    command = importlib.import_module(f"{PACKAGE}.{name}").Command
    assert importlib.import_module(f"{PACKAGE}.{alias}").Command is command
    assert command.__module__ == f"{PACKAGE}.{name}"  # the code lives under the lowercase name


def test_both_names_are_listed():
    commands = get_commands()
    for name, alias in ALIASES.items():
        assert commands[name] == APP and commands[alias] == APP
    assert commands["runwsgateway"] == APP
    assert runwsgateway.Command  # kept as it is


def test_help_lists_both_names():
    listed = ManagementUtility(["manage.py", "help"]).main_help_text().split()  # what `manage.py help` prints
    for name, alias in ALIASES.items():
        assert name in listed and alias in listed


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["websocket_stats", "websocketStats"])
def test_call_command_runs_either_name(name):
    out = StringIO()
    call_command(name, "--json", stdout=out)
    assert '"connected": 0' in out.getvalue()
