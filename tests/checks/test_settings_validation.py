"""The WEBSOCKETS dict is validated in one place (conf.py): by `manage.py check` and by get_setting."""

from pathlib import Path

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from django_aws_api_gateway_websockets import conf


def settings_messages(**kwargs):
    found = checks.run_checks(**kwargs)
    return [m for m in found if m.id in ("aws_websockets.E042", "aws_websockets.W043", "aws_websockets.E044")]


def test_new_settings_have_defaults():
    assert conf.DEFAULTS["secret_grace_seconds"] == 3600
    assert conf.DEFAULTS["exception_mail_interval_seconds"] == 300
    assert conf.get_setting("secret_grace_seconds") == 3600
    assert conf.get_setting("exception_mail_interval_seconds") == 300


def test_the_defaults_and_no_settings_are_valid(settings):
    assert conf.validate_settings(None) == ([], [])
    assert conf.validate_settings({}) == ([], [])
    assert conf.validate_settings(dict(conf.DEFAULTS)) == ([], [])
    settings.WEBSOCKETS = dict(conf.DEFAULTS)
    assert settings_messages() == []
    del settings.WEBSOCKETS
    assert settings_messages() == []


def test_websockets_must_be_a_dict(settings):
    settings.WEBSOCKETS = [("token_expiry_seconds", 60)]
    # The other checks (the token view's name) keep running on the defaults.
    found = [m for m in checks.run_checks() if m.id.startswith("aws_websockets")]
    assert [m.id for m in found] == ["aws_websockets.E042"]
    assert "settings.WEBSOCKETS must be a dict" in found[0].msg and "list" in found[0].msg
    with pytest.raises(ImproperlyConfigured, match="must be a dict"):
        conf.get_setting("token_expiry_seconds")


def test_unknown_keys_are_named_with_the_closest_known_one(settings):
    settings.WEBSOCKETS = {"token_expiry_second": 30, "rate_limit_max_attemps": 5, "colour": "blue"}
    found = settings_messages()
    assert [m.id for m in found] == ["aws_websockets.W043"] * 3
    assert 'Did you mean "token_expiry_seconds"?' in found[0].msg
    assert 'Did you mean "rate_limit_max_attempts"?' in found[1].msg
    assert "'colour'" in found[2].msg and "Did you mean" not in found[2].msg


def test_the_hint_for_a_misspelled_key_points_to_the_page_that_lists_the_keys(settings):
    """It pointed to "(README, Settings)": the README has no settings list (issue #23)."""
    settings.WEBSOCKETS = {"token_expiry_second": 30}
    [warning] = settings_messages()
    assert warning.hint == "Remove it, or correct its name: every key is in docs/settings.md (The WEBSOCKETS dict)."
    page = (Path(__file__).resolve().parents[2] / "docs" / "settings.md").read_text()
    assert "## The `WEBSOCKETS` dict" in page and "`token_expiry_seconds`" in page
    settings.WEBSOCKETS = ["token_expiry_seconds"]
    [error] = settings_messages()
    assert "docs/settings.md (The WEBSOCKETS dict)" in error.hint and "README" not in error.hint


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("token_expiry_seconds", "60", "WEBSOCKETS[\"token_expiry_seconds\"] must be an integer, not '60' (str)."),
        ("rate_limit_max_attempts", True, "must be an integer, not True (bool)"),
        ("send_max_workers", 8.0, "must be an integer, not 8.0 (float)"),
        ("send_retry_base_delay", "0.05", "must be a number, not '0.05' (str)"),
        ("send_retry_base_delay", False, "must be a number, not False (bool)"),
        ("token_url_name", "", "must be a non-empty string"),
        ("token_url_name", 3, "must be a non-empty string, not 3 (int)"),
        ("token_expiry_seconds", 0, 'WEBSOCKETS["token_expiry_seconds"] must be a positive number, not 0.'),
        ("rate_limit_max_attempts", -5, "must be a positive number, not -5"),
        ("send_max_workers", 0, "must be a positive number"),
        ("token_rate_limit_per_minute", 0, "must be a positive number"),
        ("send_max_retries", -1, "must be at least 0, not -1"),
        ("gateway_cache_seconds", -30, "must be at least 0"),
        ("secret_grace_seconds", -1, "must be at least 0"),
        ("exception_mail_interval_seconds", "300", "must be an integer"),
        ("send_retry_base_delay", -0.5, "must be at least 0"),
    ],
)
def test_wrong_values_are_errors(settings, name, value, expected):
    settings.WEBSOCKETS = {name: value}
    [error] = settings_messages()
    assert error.id == "aws_websockets.E044" and isinstance(error, checks.Error)
    assert expected in error.msg


@pytest.mark.parametrize(
    "name, value",
    [
        ("send_retry_base_delay", 1),  # a float setting takes an int
        ("send_retry_base_delay", 0),
        ("send_max_calls_per_second", 0),  # no ceiling
        ("send_max_retries", 0),
        ("gateway_cache_seconds", 0),
        ("secret_grace_seconds", 0),
        ("exception_mail_interval_seconds", 0),
        ("token_expiry_seconds", None),  # None means the default, as in get_setting
    ],
)
def test_edge_values_that_are_valid(settings, name, value):
    settings.WEBSOCKETS = {name: value}
    assert settings_messages() == []


@pytest.mark.parametrize("name", conf.SEND_TRANSPORTS)
def test_every_transport_is_accepted(settings, name):
    settings.WEBSOCKETS = {"send_transport": name}
    assert settings_messages() == []


def test_an_unknown_transport_lists_the_transports_the_package_has(settings):
    settings.WEBSOCKETS = {"send_transport": "carrier-pigeon"}
    [error] = settings_messages()
    assert error.id == "aws_websockets.E044"
    assert "'carrier-pigeon'" in error.msg
    assert all(repr(name) in error.msg for name in conf.SEND_TRANSPORTS)
    assert conf.choices("send_transport") is conf.SEND_TRANSPORTS  # one list, not a copy


def test_every_problem_is_reported_at_once(settings):
    settings.WEBSOCKETS = {"token_expiry_seconds": "1", "send_transport": "x", "tokn_url_name": "a"}
    assert sorted(m.id for m in settings_messages()) == [
        "aws_websockets.E044",
        "aws_websockets.E044",
        "aws_websockets.W043",
    ]


def test_the_settings_check_reads_no_database(settings, django_assert_num_queries, db):
    settings.WEBSOCKETS = {"token_expiry_seconds": "x"}
    from django_aws_api_gateway_websockets.checks import check_settings

    with django_assert_num_queries(0):
        assert [m.id for m in check_settings(None, databases=["default"])] == ["aws_websockets.E044"]


# --- get_setting: the same message at first use -------------------------------------------


def test_get_setting_refuses_a_wrong_type_with_the_check_message(settings):
    settings.WEBSOCKETS = {"rate_limit_max_attempts": "20"}
    with pytest.raises(ImproperlyConfigured) as failure:
        conf.get_setting("rate_limit_max_attempts")
    [error] = settings_messages()
    assert str(failure.value) == error.msg
    settings.WEBSOCKETS = {"rate_limit_max_attempts": True}
    with pytest.raises(ImproperlyConfigured, match="not True"):
        conf.get_setting("rate_limit_max_attempts")
    settings.WEBSOCKETS = {"rate_limit_max_attempts": [20]}  # unhashable
    with pytest.raises(ImproperlyConfigured, match=r"not \[20\] \(list\)"):
        conf.get_setting("rate_limit_max_attempts")


def test_get_setting_returns_valid_values_and_defaults(settings):
    settings.WEBSOCKETS = {"send_retry_base_delay": 1, "token_expiry_seconds": 30, "token_url_name": None}
    assert conf.get_setting("send_retry_base_delay") == 1
    assert conf.get_setting("token_expiry_seconds") == 30
    assert conf.get_setting("token_url_name") == "websocket_token"
    with pytest.raises(KeyError):
        conf.get_setting("no_such_setting")


def test_get_setting_checks_a_value_once(settings, monkeypatch):
    # get_setting is on the per-request path: a value already found right is not checked again.
    calls = []
    real = conf._type_problem
    monkeypatch.setattr(conf, "_type_problem", lambda name, value: calls.append(value) or real(name, value))
    monkeypatch.setattr(conf, "_checked", set())
    settings.WEBSOCKETS = {"token_expiry_seconds": 45}
    for _ in range(3):
        assert conf.get_setting("token_expiry_seconds") == 45
    assert calls == [45]
    # A changed value (override_settings, or the dict edited in place) is checked afresh.
    settings.WEBSOCKETS["token_expiry_seconds"] = "45"
    with pytest.raises(ImproperlyConfigured):
        conf.get_setting("token_expiry_seconds")
    settings.WEBSOCKETS = {"token_expiry_seconds": 45.0}  # equal to 45, but not an int
    with pytest.raises(ImproperlyConfigured, match=r"not 45\.0 \(float\)"):
        conf.get_setting("token_expiry_seconds")
    conf.get_setting("gateway_cache_seconds")  # a default is never checked
    assert calls == [45, "45", 45.0]
