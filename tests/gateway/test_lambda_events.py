"""The events of the Lambda proxy integration as the local gateway builds them
(``aws_lambda.events``), held against the samples of AWS's documentation (WebSocket API
events a Lambda function receives), and how a function's answer is read."""

import asyncio
import base64

import pytest

from django_aws_api_gateway_websockets.aws_lambda.events import build_event, request_time
from django_aws_api_gateway_websockets.gateway import lambda_invoke

# The shape of AWS's samples (values shortened): which keys each event type has.
AWS_CONNECT = {
    "headers": {
        "Host": "abc.execute-api.us-east-1.amazonaws.com",
        "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
        "Sec-WebSocket-Key": "X/MA+DSRXZ8WnITjBpxm3g==",
        "Sec-WebSocket-Version": "13",
        "X-Amzn-Trace-Id": "Root=1-5fd5ea4b-35d888b22f86c62d26beae28",
        "X-Forwarded-For": "203.0.113.0",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    },
    "multiValueHeaders": {},
    "requestContext": {
        "routeKey": "$connect",
        "disconnectStatusCode": None,
        "messageId": None,
        "eventType": "CONNECT",
        "extendedRequestId": "XfGLwFTktjMFsLg=",
        "requestTime": "13/Dec/2020:10:17:47 +0000",
        "messageDirection": "IN",
        "disconnectReason": None,
        "stage": "dev",
        "connectedAt": 1607854667185,
        "requestTimeEpoch": 1607854667186,
        "identity": {"userAgent": "", "sourceIp": "203.0.113.0"},
        "requestId": "XfGLwFTktjMFsLg=",
        "domainName": "abc.execute-api.us-east-1.amazonaws.com",
        "connectionId": "XfGLwd9YNjMCJQA=",
        "apiId": "abc",
    },
    "isBase64Encoded": False,
}
AWS_MESSAGE_CONTEXT = {
    "routeKey",
    "messageId",
    "eventType",
    "extendedRequestId",
    "requestTime",
    "messageDirection",
    "stage",
    "connectedAt",
    "requestTimeEpoch",
    "identity",
    "requestId",
    "domainName",
    "connectionId",
    "apiId",
}
AWS_DISCONNECT_CONTEXT = AWS_MESSAGE_CONTEXT | {"disconnectStatusCode", "disconnectReason"}


def event(route_key, **kwargs):
    return build_event(route_key, api_id="abc", connection_id="XfGLwd9YNjMCJQA=", stage="dev", **kwargs)


def test_connect_event_has_the_keys_and_headers_of_awss_sample():
    built = event(
        "$connect",
        source_ip="203.0.113.0",
        user_agent="",
        headers={"Sec-WebSocket-Key": "k", "Sec-WebSocket-Version": "13", "Host": "client-said.example"},
        query=[("ws_token", "t"), ("channel", "a"), ("channel", "b")],
    )
    assert set(built) == set(AWS_CONNECT) | {"queryStringParameters", "multiValueQueryStringParameters"}
    assert set(built["requestContext"]) == set(AWS_CONNECT["requestContext"])
    assert built["requestContext"]["eventType"] == "CONNECT"
    # API Gateway's own headers, the Host being the API's domain (never the client's)
    assert built["headers"]["Host"] == "abc.execute-api.us-east-1.amazonaws.com"
    assert {"X-Amzn-Trace-Id", "X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto"} <= set(built["headers"])
    assert built["headers"]["X-Forwarded-For"] == "203.0.113.0"
    assert built["queryStringParameters"] == {"ws_token": "t", "channel": "b"}  # the last value, as AWS
    assert built["multiValueQueryStringParameters"]["channel"] == ["a", "b"]
    assert built["multiValueHeaders"]["Sec-WebSocket-Key"] == ["k"]


def test_connect_without_a_query_has_no_query_keys():
    assert "queryStringParameters" not in event("$connect")


def test_message_event_has_a_body_and_no_headers():
    built = event("$default", body='{"action": "x"}')
    assert set(built) == {"requestContext", "body", "isBase64Encoded"}
    assert set(built["requestContext"]) == AWS_MESSAGE_CONTEXT
    assert (built["requestContext"]["eventType"], built["body"], built["isBase64Encoded"]) == (
        "MESSAGE",
        '{"action": "x"}',
        False,
    )


def test_binary_frame_is_base64():
    built = event("$default", body=b"\x00\xff")
    assert built["isBase64Encoded"] is True
    assert base64.b64decode(built["body"]) == b"\x00\xff"


def test_disconnect_event_carries_the_close():
    built = event("$disconnect", disconnect_status_code=1006, disconnect_reason="gone")
    assert set(built["requestContext"]) == AWS_DISCONNECT_CONTEXT
    assert (built["requestContext"]["disconnectStatusCode"], built["requestContext"]["eventType"]) == (
        1006,
        "DISCONNECT",
    )
    assert "body" not in built


def test_request_time_is_written_as_api_gateway_writes_it():
    assert request_time(1607854667186) == "13/Dec/2020:10:17:47 +0000"


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        ({"statusCode": 200, "body": "ok"}, 200),
        ({"statusCode": 403}, 403),
        (None, 502),
        ({"statusCode": "200"}, 502),
        ({"body": "no status"}, 502),
        ({"statusCode": 200, "body": "!!", "isBase64Encoded": True}, 502),
    ],
)
def test_function_answers_are_read_as_api_gateway_reads_them(answer, status):
    assert lambda_invoke.result_of(answer).status == status


def invoke(handler, timeout=5.0):
    return asyncio.run(
        lambda_invoke.invoke(
            handler,
            "$default",
            api_id="abc",
            connection_id="c1=",
            stage="dev",
            domain_name="127.0.0.1",
            source_ip="127.0.0.1",
            user_agent="",
            connected_at_ms=0,
            timeout=timeout,
            body=b"hi",
        )
    )


def test_invoke_passes_the_event_and_a_context_and_reads_the_answer():
    seen = []

    def handler(event, context):
        seen.append((event["body"], context.get_remaining_time_in_millis() > 0))
        return {"statusCode": 200, "body": "answer", "headers": {"Sec-WebSocket-Protocol": "chat"}}

    result = invoke(handler)
    assert (result.status, result.body, result.headers["Sec-WebSocket-Protocol"]) == (200, b"answer", "chat")
    assert seen == [("hi", True)]


def test_a_function_error_is_502_and_a_slow_function_504():
    def fails(event, context):
        raise RuntimeError("boom")

    def slow(event, context):
        import time

        time.sleep(0.5)
        return {"statusCode": 200}

    assert invoke(fails).status == 502
    result = invoke(slow, timeout=0.05)
    assert (result.status, result.timed_out) == (504, True)
