"""log_context: the attributes every record of the package's loggers carries (docs/monitoring.md)."""

from django_aws_api_gateway_websockets.log_context import log_context


def test_the_four_stable_keys_are_always_there():
    assert log_context() == {"connection_id": "", "route": "", "reason": "", "user_id": None}
    assert log_context("c1", "connect", "origin", 7, channel="room") == {
        "connection_id": "c1",
        "route": "connect",
        "reason": "origin",
        "user_id": 7,
        "channel": "room",
    }


def test_runservers_request_line_never_shows_a_token(caplog):
    """Issue #23: runserver logged "POST /ws/connect?ws_token=<the token>&channel=lobby"."""
    import logging

    with caplog.at_level("INFO", logger="django.server"):
        logging.getLogger("django.server").info(
            '"%s" %s %s', "POST /ws/connect?ws_token=Zx9-_abcDEF123&channel=lobby HTTP/1.1", "200", "2"
        )
        logging.getLogger("django.server").warning("GET /ws/?channel=a&ws_token=secretvalue1 went wrong")
    assert [r.getMessage() for r in caplog.records] == [
        '"POST /ws/connect?ws_token=[redacted]&channel=lobby HTTP/1.1" 200 2',
        "GET /ws/?channel=a&ws_token=[redacted] went wrong",
    ]


def test_redact_tokens_leaves_other_parameters():
    from django_aws_api_gateway_websockets.log_context import redact_tokens

    assert redact_tokens("/ws/connect?channel=x&my_ws_token=keep&ws_token=t1#f") == (
        "/ws/connect?channel=x&my_ws_token=keep&ws_token=[redacted]#f"
    )
    assert redact_tokens("no token here") == "no token here"


def test_redact_tokens_also_blanks_a_percent_encoded_parameter_name():
    """Django decodes ``ws%5Ftoken`` to ``ws_token``: a connect URL written so spends its token
    as well, so the log must not keep it."""
    from django.http import QueryDict

    from django_aws_api_gateway_websockets.log_context import redact_tokens

    assert QueryDict("ws%5Ftoken=t1").get("ws_token") == "t1"
    assert redact_tokens("/ws/connect?ws%5Ftoken=t1&channel=x") == "/ws/connect?ws%5Ftoken=[redacted]&channel=x"
    assert redact_tokens("/ws/connect?a=1&ws%5ftoken=t2") == "/ws/connect?a=1&ws%5ftoken=[redacted]"
