"""The helpers users write their own handler tests with (django_aws_api_gateway_websockets.testing)."""

from django.test import TestCase

from django_aws_api_gateway_websockets.models import ApiGateway, ApiGatewayAdditionalRoute, WebSocketSession
from django_aws_api_gateway_websockets.testing import ManagementAPICapture, WebSocketTestClient


def test_fixture_client_connects_sends_and_captures(ws_client, user):
    ws = ws_client("/ws/", user=user)
    assert ws.connect(channel="room-1").status_code == 200
    assert ws.send({"handler": "send_chat", "text": "hi"}).json() == {"type": "sent"}
    assert ws.messages == [{"type": "chat", "text": "hi", "user": "alice"}]


def test_two_clients_share_a_channel(ws_client, user, other_user):
    alice, bob = ws_client("/ws/", user=user), ws_client("/ws/", user=other_user)
    alice.connect(channel="room")
    bob.connect(channel="room")
    bob.send({"handler": "send_chat", "text": "yo"})
    assert alice.messages == bob.messages == [{"type": "chat", "text": "yo", "user": "bob"}]


def test_disconnected_client_is_gone_for_senders(ws_client, user, other_user):
    alice, bob = ws_client("/ws/", user=user), ws_client("/ws/", user=other_user)
    alice.connect(channel="room")
    bob.connect(channel="room")
    alice.disconnect()
    assert WebSocketSession.objects.get(connection_id=alice.connection_id).connected is False
    # Even if the row were still marked connected, the capture answers 410 like AWS.
    WebSocketSession.objects.filter(connection_id=alice.connection_id).update(connected=True)
    result = WebSocketSession.objects.in_channel("room").send_message({"x": 1})
    assert result.gone == [alice.connection_id]
    assert result.delivered == [bob.connection_id]


def test_rejected_connect_is_reported(ws_client):
    ws = ws_client("/ws/")  # no user: the token view refuses
    assert ws.connect().status_code == 401
    assert ws.connected is False


def test_custom_route_goes_to_its_integration_url(ws_client, user):
    ws = ws_client("/ws/", user=user)
    ws.connect()
    ApiGatewayAdditionalRoute.objects.create(
        api_gateway=ws.gateway, name="staff", route_key="staffroute", integration_url="https://www.example.com/staff/x"
    )
    # /staff/ requires permissions alice does not have: 403 proves the frame went there.
    assert ws.send({"action": "staffroute"}).status_code == 403
    assert ws.send({"action": "other", "handler": "whoami"}).json()["type"] == "whoami"


def test_capture_answers_gone_like_aws(ws_capture, db):
    gateway = ApiGateway.objects.create(api_name="g", api_id="g1", region="us-east-1")
    dead = WebSocketSession.objects.create(connection_id="dead", api_gateway=gateway)
    alive = WebSocketSession.objects.create(connection_id="alive", api_gateway=gateway)
    ws_capture.mark_gone("dead")
    result = WebSocketSession.objects.send_message({"x": 1})
    assert (result.gone, result.delivered) == (["dead"], ["alive"])
    dead.refresh_from_db()
    assert dead.connected is False
    assert ws_capture.endpoints["alive"] == ["https://g1.execute-api.us-east-1.amazonaws.com/production"]
    assert ws_capture.raw["alive"] == [b'{"x":1}']
    assert alive.close() is True and ws_capture.deleted == ["alive"]


def test_capture_can_fail_calls(ws_capture, db):
    gateway = ApiGateway.objects.create(api_name="g", api_id="g1", region="us-east-1")
    WebSocketSession.objects.create(connection_id="slow", api_gateway=gateway)
    ws_capture.fail("slow", "LimitExceededException")
    assert WebSocketSession.objects.send_message("hi").failed == {"slow": "LimitExceededException"}


def test_in_memory_backend_from_settings(settings, db):
    """The in-memory backend configured like EMAIL_BACKEND: no capture block needed."""
    from django_aws_api_gateway_websockets.testing import default_capture

    settings.WEBSOCKETS = {"send_backend": "django_aws_api_gateway_websockets.testing.InMemoryBackend"}
    gateway = ApiGateway.objects.create(api_name="g", api_id="g1", region="us-east-1")
    WebSocketSession.objects.create(connection_id="c1", api_gateway=gateway)
    default_capture.clear()
    assert WebSocketSession.objects.send_message({"n": 1}).delivered == ["c1"]
    assert default_capture.sent_to("c1") == [{"n": 1}]
    default_capture.clear()


class DjangoTestCaseUsage(TestCase):
    def test_context_manager_in_testcase(self):
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.create_user("carol")
        with WebSocketTestClient("/ws/", user=user) as ws:
            self.assertEqual(ws.connect(channel="c").status_code, 200)
            ws.send({"handler": "send_chat", "text": "hello"})
            self.assertEqual(ws.messages[0]["text"], "hello")
        self.assertIsNone(ManagementAPICapture.active)
        self.assertFalse(WebSocketSession.objects.get().connected)


def test_the_test_client_subscribes_whispers_and_unsubscribes(
    ws_client, user, other_user, settings, django_capture_on_commit_callbacks
):
    settings.WEBSOCKETS = {"client_events_channels": ["doc"]}
    alice, bob = ws_client("/ws/", user=user), ws_client("/ws/", user=other_user)
    alice.connect(channel="room")
    bob.connect(channel="doc")
    assert alice.subscribe("doc").json() == {"type": "subscribed", "channel": "doc", "seq": 0}
    with django_capture_on_commit_callbacks(execute=True):
        assert alice.whisper("doc", "typing", {"on": True}).json()["sent"] == 1
    assert bob.messages[-1]["type"] == "whisper" and bob.messages[-1]["user"]["username"] == "alice"
    assert alice.unsubscribe("doc").json() == {"type": "unsubscribed", "channel": "doc"}
    assert alice.whisper("doc", "typing").status_code == 409


# --- lambda_event: the events of a record's Lambda proxy integration (issue #27) -----------


class LambdaEventTests(TestCase):
    def test_lambda_event_is_the_records_event(self):
        from django_aws_api_gateway_websockets.testing import lambda_event

        gateway = ApiGateway.objects.create(api_name="fn", api_id="fn00000001", region="eu-west-1", stage_name="live")
        event = lambda_event(gateway, "$default", "c1=", body={"handler": "ping"}, source_ip="198.51.100.1")
        context = event["requestContext"]
        assert (context["apiId"], context["stage"], context["connectionId"], context["eventType"]) == (
            "fn00000001",
            "live",
            "c1=",
            "MESSAGE",
        )
        assert context["domainName"] == "fn00000001.execute-api.eu-west-1.amazonaws.com"
        assert context["identity"]["sourceIp"] == "198.51.100.1"
        assert event["body"] == '{"handler": "ping"}'
        connect = lambda_event(
            gateway, "$connect", "c1=", query={"ws_token": "t"}, headers={"Origin": "https://a.example"}
        )
        assert (
            connect["queryStringParameters"] == {"ws_token": "t"}
            and connect["headers"]["Origin"] == "https://a.example"
        )
