"""Hostile input on every route API Gateway calls, and on the token view (docs/security.md).

The contract pinned here, for every case: a clear 4xx (never a 500), no e-mail to the admins
(``ADMINS`` is set, so a 500 or an error logged on ``django.security`` would send one), and no
row changed: ``WebSocketSession`` (so no ``request_count`` or ``updated_on`` bump),
``WebSocketToken`` (the connect token is not spent) and ``ConnectionRateLimit`` (where a refused
connect may only add rejected attempts, ``successful=False``).

Requests go through Django's whole handler (middleware included) with a raw WSGI environ, so
that a lying or non-numeric ``Content-Length``, a short body or a broken input stream can be
expressed. The targets (``tests/urls.py``):

- ``/ws/<route>`` (``ChatView``: token on connect, ``default`` overridden to answer 200);
  ``chat`` stands for a custom route key (an additional route integrating to ``/ws/chat``);
- ``/open/<route>`` (``OpenView``: ``ALLOWED_HANDLERS = ["echo"]``) and ``/explicit/<route>``
  (``ExplicitView``: ``@handler`` methods), both with the base ``default``, which refuses
  unknown handlers with 400: used where a body that parses must still be refused;
- ``/api/ws-token/`` (``WebSocketTokenView``), anonymous or logged in without a CSRF token.

API Gateway sends no body on ``$connect`` and ``$disconnect``; a JSON-shaped body there may be
refused or ignored (the spec does not say which), but never crash, mail or half-apply. Framing
that is wrong whatever the route (a ``Content-Length`` that is not a non-negative integer, or
over 128 KiB) is refused on every route.
"""

import functools
import io
import json
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from django.core import mail
from django.test import Client

from django_aws_api_gateway_websockets import protocol, signals, tokens
from django_aws_api_gateway_websockets.models import (
    ApiGateway,
    ConnectionRateLimit,
    WebSocketSession,
    WebSocketToken,
)
from django_aws_api_gateway_websockets.testing.client import integration_headers, new_connection_id
from tests.views import ChatView

pytestmark = pytest.mark.django_db

LIMIT = protocol.MAX_PAYLOAD_BYTES  # 128 KiB
TABLES = (WebSocketSession, WebSocketToken, ConnectionRateLimit)
URL_ROUTE = {"connect": "connect", "disconnect": "disconnect", "default": "default", "custom": "chat"}
ALL_ROUTES = list(URL_ROUTE)
MESSAGE_ROUTES = ["default", "custom"]
VALID_MESSAGE = b'{"handler": "whoami"}'


# --- requests through the whole handler, as raw WSGI ----------------------------------------


class BrokenStream(io.RawIOBase):
    """``wsgi.input`` of a client that went away mid-body."""

    def readable(self):
        return True

    def read(self, size=-1):
        raise OSError("connection reset by peer")

    readline = read


def wsgi_environ(path, *, method="POST", body=b"", query="", headers=None, content_length=None, stream=None):
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_LENGTH": str(len(body)) if content_length is None else content_length,
        "wsgi.input": stream if stream is not None else io.BytesIO(body),
    }
    if body:
        environ["CONTENT_TYPE"] = "application/json"
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def snapshot():
    return {model.__name__: {row["id"]: row for row in model.objects.values()} for model in TABLES}


class Wire:
    """Sends one request per call and checks the refusal contract against the rows before it."""

    def __init__(self, gateway, user, session_row):
        self.gateway = gateway
        self.user = user
        self.session_row = session_row
        self.client = Client(raise_request_exception=False)
        self.token = tokens.issue_token(user, "hostile-browser-session")  # valid for /ws/connect
        self.before = None
        self.route = None
        self.connection_id = None

    def send(self, path, *, client=None, **environ):
        self.before = snapshot()
        try:
            return (client or self.client).request(**wsgi_environ(path, **environ))
        except Exception as exc:  # escaped Django's handler itself: the WSGI server answers 500
            pytest.fail(f"the request escaped Django's handler: {type(exc).__name__}: {exc}")

    def integration(
        self, route, *, path="/ws/", connection_id=None, body=None, query=None, headers=None, drop=(), **environ
    ):
        """A request to ``path + route`` with the headers API Gateway sends; valid unless overridden.

        ``connect`` gets a fresh connection id and a valid ``ws_token``; the other routes use
        ``session_row``'s connection; messages get a valid ``whoami`` body.
        """
        if connection_id is None:
            connection_id = new_connection_id() if route == "connect" else self.session_row.connection_id
        if query is None:
            query = urlencode({protocol.QUERY_TOKEN: self.token}) if route == "connect" else ""
        if body is None:
            body = VALID_MESSAGE if route in MESSAGE_ROUTES else b""
        all_headers = integration_headers(self.gateway, connection_id, route=URL_ROUTE[route])
        all_headers.update(headers or {})
        for name in drop:
            all_headers.pop(name, None)
        self.route, self.connection_id = route, connection_id
        return self.send(path + URL_ROUTE[route], body=body, query=query, headers=all_headers, **environ)

    def fill(self, value, other_gateway=None):
        """``value`` with ``{api}``/``{API}``/``{secret}`` (and ``{other_api}``/``{other_secret}``) filled in."""
        other = other_gateway or self.gateway
        return value.format(
            api=self.gateway.api_id,
            API=self.gateway.api_id.upper(),
            secret=self.gateway.integration_secret,
            other_api=other.api_id,
            other_secret=other.integration_secret,
        )

    def assert_refused(self, response):
        status = response.status_code
        assert 400 <= status < 500, f"expected a 4xx, got {status}: {response.content[:300]!r}"
        assert mail.outbox == [], f"admins were mailed: {mail.outbox[0].subject!r}"
        after = snapshot()
        if self.route == "connect":
            before_attempts, after_attempts = self.before.pop("ConnectionRateLimit"), after.pop("ConnectionRateLimit")
            assert {pk: after_attempts.get(pk) for pk in before_attempts} == before_attempts
            added = [row for pk, row in after_attempts.items() if pk not in before_attempts]
            assert all(row["successful"] is False for row in added), added
        if self.route in MESSAGE_ROUTES:
            # The limiter's state is the one write a refused message makes (its place is spent).
            for rows in (self.before["WebSocketSession"], after["WebSocketSession"]):
                for row in rows.values():
                    del row["message_tat_us"]
        assert after == self.before, "a refused request changed rows"

    def assert_refused_or_ignored(self, response):
        """For a body on $connect/$disconnect: either refused cleanly or handled as if absent."""
        if not 200 <= response.status_code < 300:
            return self.assert_refused(response)
        assert mail.outbox == []
        if self.route == "connect":
            assert WebSocketSession.objects.filter(connection_id=self.connection_id, connected=True).exists()
            assert WebSocketToken.objects.get(token=tokens.hash_token(self.token)).used is True
        else:
            assert WebSocketSession.objects.get(pk=self.session_row.pk).connected is False
        return None


@pytest.fixture(autouse=True)
def _admins(settings):
    settings.ADMINS = [("Admin", "admin@example.com")]
    settings.MANAGERS = [("Manager", "manager@example.com")]


@pytest.fixture
def wire(gateway, user, session_row):
    return Wire(gateway, user, session_row)


@pytest.fixture
def other_gateway(db):
    return ApiGateway.objects.create(
        api_name="other", api_id="zzz999yyy8", region="eu-west-1", target_base_endpoint="https://www.example.com/ws/"
    )


# --- the inputs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Body:
    id: str
    data: bytes
    # Valid JSON object a message view may legitimately handle (ChatView's default answers 200).
    valid_object: bool = False


def nested(depth, kind):
    if kind == "array":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "{}" + "}" * depth


def oversized_message():
    prefix, suffix = b'{"handler": "echo", "pad": "', b'"}'
    return prefix + b"a" * (LIMIT + 1 - len(prefix) - len(suffix)) + suffix


ECHO = '{"handler": "echo"}'
BODIES = [
    # Malformed and truncated JSON.
    Body("not-json", b"{not json"),
    Body("single-quotes", b"{'handler': 'echo'}"),
    Body("trailing-comma", b'{"handler": "echo",}'),
    Body("trailing-garbage", b'{"handler": "echo"} x'),
    Body("two-documents", (ECHO + ECHO).encode()),
    Body("trailing-nul", ECHO.encode() + b"\x00"),
    Body("whitespace-only", b"  \n "),
    Body("nan-literal", b'{"handler": "echo", "n": NaN}'),
    Body("infinity-literal", b'{"handler": "echo", "n": -Infinity}'),
    Body("huge-int-literal", b'{"handler": "echo", "n": ' + b"9" * 5000 + b"}"),
    Body("truncated-after-value", b'{"handler": "echo"'),
    Body("truncated-in-string", b'{"handler": "ec'),
    Body("truncated-open-brace", b"{"),
    Body("truncated-open-bracket", b"["),
    Body("truncated-string", b'"abc'),
    # Deep nesting (all within 128 KiB).
    *[
        Body(f"nested-{kind}-{depth}", nested(depth, kind).encode(), valid_object=(kind == "object" and depth == 100))
        for kind in ("array", "object")
        for depth in (100, 1_500, 20_000)
    ],
    *[
        Body(f"nested-value-under-echo-{depth}", ('{"handler": "echo", "x": ' + nested(depth, "object") + "}").encode())
        for depth in (1_500, 19_990)
    ],
    # Not UTF-8, or UTF-8 with a BOM (a frame is text: UTF-8 without BOM).
    Body("bytes-ff-fe", b"\xff\xfe"),
    Body("latin-1-in-string", b'{"handler": "echo", "x": "caf\xe9"}'),
    Body("overlong-utf8", b'{"handler": "echo", "x": "\xc0\xaf"}'),
    Body("cesu-surrogate", b'{"handler": "echo", "x": "\xed\xa0\x80"}'),
    Body("utf-16-le", ECHO.encode("utf-16-le")),
    Body("utf-16-with-bom", ECHO.encode("utf-16")),
    Body("utf-32", ECHO.encode("utf-32")),
    Body("utf-8-bom-object", b"\xef\xbb\xbf" + ECHO.encode()),
    Body("utf-8-bom-only", b"\xef\xbb\xbf"),
    # JSON, but not an object.
    Body("list-empty", b"[]"),
    Body("list", b"[1, 2]"),
    Body("list-of-message", ("[" + ECHO + "]").encode()),
    Body("string", b'"echo"'),
    Body("number", b"42"),
    Body("float", b"3.14"),
    Body("null", b"null"),
    Body("true", b"true"),
]
BODY_PARAMS = [pytest.param(body, id=body.id) for body in BODIES]
assert all(len(body.data) <= LIMIT for body in BODIES)


# A Content-Length that no HTTP server forwards as is: refused on every route.
HEADER_FRAMING = [
    pytest.param({"body": oversized_message()}, id="body-just-over-128KiB"),
    pytest.param({"body": VALID_MESSAGE, "content_length": str(10**9)}, id="content-length-1e9"),
    pytest.param({"body": VALID_MESSAGE, "content_length": "9" * 30}, id="content-length-30-digits"),
    pytest.param({"body": VALID_MESSAGE, "content_length": "abc"}, id="content-length-abc"),
    pytest.param({"body": VALID_MESSAGE, "content_length": "-1"}, id="content-length-minus-1"),
    pytest.param({"body": VALID_MESSAGE, "content_length": "1e3"}, id="content-length-1e3"),
    pytest.param({"body": b"", "content_length": "abc"}, id="empty-body-content-length-abc"),
    pytest.param({"body": b"", "content_length": "-1"}, id="empty-body-content-length-minus-1"),
    pytest.param({"method": "GET"}, id="method-GET"),
    pytest.param({"method": "PUT"}, id="method-PUT"),
    pytest.param({"method": "OPTIONS"}, id="method-OPTIONS"),
]
# A body that does not match its Content-Length, or cannot be read: refused where a body is read.
BODY_FRAMING = [
    pytest.param({"body": VALID_MESSAGE, "content_length": "5"}, id="content-length-shorter-than-body"),
    pytest.param(
        {"body": VALID_MESSAGE, "content_length": str(len(VALID_MESSAGE) + 100)}, id="content-length-longer-than-body"
    ),
    pytest.param({"body": oversized_message(), "content_length": "100"}, id="oversized-body-content-length-100"),
    pytest.param({"stream": BrokenStream(), "content_length": str(len(VALID_MESSAGE))}, id="stream-breaks"),
]

HANDLER_NAMES = [
    pytest.param([], id="list-empty"),
    pytest.param(["echo"], id="list-with-handler"),
    pytest.param({"echo": True}, id="dict"),
    pytest.param(42, id="number"),
    pytest.param(1.5, id="float"),
    pytest.param(True, id="bool"),
    pytest.param(None, id="null"),
    pytest.param("", id="empty"),
    pytest.param("e" * 100_000, id="very-long"),
    pytest.param("echo" + "\x00", id="nul-suffix"),
    pytest.param("echo ", id="trailing-space"),
    pytest.param("ECHO", id="upper-case"),
    pytest.param("\u0435cho", id="cyrillic-homoglyph"),
    pytest.param("not_listed", id="public-but-not-listed"),
    pytest.param("default", id="default"),
    pytest.param("__init__", id="__init__"),
    pytest.param("__class__", id="__class__"),
    pytest.param("dispatch", id="dispatch"),
    pytest.param("_private", id="_private"),
    pytest.param("_message", id="_message"),
    pytest.param("setup", id="setup"),
    pytest.param("http_method_not_allowed", id="http_method_not_allowed"),
    pytest.param("options", id="options"),
    pytest.param("get", id="get"),
    pytest.param("post", id="post"),
    pytest.param("as_view", id="as_view"),
    pytest.param("handle_exception", id="handle_exception"),
    pytest.param("connect", id="connect"),
    pytest.param("helper", id="public-request-shaped-unmarked"),
    pytest.param("format_text", id="public-helper"),
]

CHANNELS = [
    pytest.param(None, id="null"),
    pytest.param(42, id="number"),
    pytest.param(True, id="bool"),
    pytest.param(["room-2"], id="list"),
    pytest.param({"name": "room-2"}, id="dict"),
    pytest.param("", id="empty"),
    pytest.param("has space", id="space"),
    pytest.param("x" * (protocol.CHANNEL_NAME_MAX_LENGTH + 1), id="129-chars"),
    pytest.param("x" * 100_000, id="100k-chars"),
    pytest.param("r\u00fcm", id="unicode"),
    pytest.param("\uff52\uff4f\uff4f\uff4d", id="fullwidth"),
    pytest.param("\ud800", id="lone-surrogate"),
    pytest.param("room\n", id="trailing-newline"),
    pytest.param("room\x00", id="nul"),
    pytest.param("a/b", id="slash"),
    pytest.param("../room", id="dot-dot-slash"),
    pytest.param("*", id="wildcard"),
    pytest.param("room-1;DROP TABLE x", id="sql-ish"),
]
MISSING = object()  # a change_channel message without a "channel" key


# --- controls: the same requests without the hostile part are accepted ------------------------


@pytest.mark.parametrize(
    "route,path,body",
    [
        pytest.param("connect", "/ws/", b"", id="connect"),
        pytest.param("disconnect", "/ws/", b"", id="disconnect"),
        pytest.param("default", "/ws/", VALID_MESSAGE, id="default-ws-whoami"),
        pytest.param("custom", "/ws/", VALID_MESSAGE, id="custom-ws-whoami"),
        pytest.param("default", "/ws/", b'{"handler": "change_channel", "channel": "room-2"}', id="change_channel"),
        pytest.param("default", "/open/", ECHO.encode(), id="default-open-echo"),
        pytest.param("custom", "/open/", ECHO.encode(), id="custom-open-echo"),
        pytest.param("default", "/explicit/", b'{"handler": "shout"}', id="default-explicit-shout"),
        pytest.param("default", "/ws/", b'{"n": ' + nested(100, "object").encode() + b"}", id="nested-object-100"),
    ],
)
def test_control_the_valid_request_is_accepted(wire, route, path, body):
    response = wire.integration(route, path=path, body=body)
    assert response.status_code == 200, response.content[:300]
    assert mail.outbox == []


def test_control_the_token_view_answers_a_logged_in_browser_with_its_csrf_token(wire, user):
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(user)
    csrf = "c" * 32
    client.cookies["csrftoken"] = csrf
    response = wire.send("/api/ws-token/", client=client, headers={"X-CSRFToken": csrf})
    assert response.status_code == 200, response.content[:300]


# --- bodies -----------------------------------------------------------------------------------


# ChatView's default answers 200 to any valid JSON object, by design: such bodies only on /open/.
MESSAGE_BODY_PARAMS = [
    pytest.param(path, body, id=f"{path.strip('/')}-{body.id}")
    for path in ("/ws/", "/open/")
    for body in BODIES
    if path == "/open/" or not body.valid_object
]


@pytest.mark.parametrize("path,body", MESSAGE_BODY_PARAMS)
@pytest.mark.parametrize("route", MESSAGE_ROUTES)
def test_hostile_body_on_a_message_route_is_refused(wire, route, path, body):
    wire.assert_refused(wire.integration(route, path=path, body=body.data))


@pytest.mark.parametrize("body", BODY_PARAMS)
@pytest.mark.parametrize("route", ["connect", "disconnect"])
def test_hostile_body_on_connect_or_disconnect_is_refused_or_ignored(wire, route, body):
    wire.assert_refused_or_ignored(wire.integration(route, body=body.data))


@pytest.fixture(params=["anonymous", "logged-in-without-csrf"])
def token_client(request, user):
    if request.param == "anonymous":
        return Client(raise_request_exception=False)
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(user)
    return client


@pytest.mark.parametrize("body", BODY_PARAMS)
def test_hostile_body_on_the_token_view_is_refused(wire, token_client, body):
    wire.assert_refused(wire.send("/api/ws-token/", client=token_client, body=body.data))


# --- framing: Content-Length, size, method, a broken stream -----------------------------------


@pytest.mark.parametrize("framing", HEADER_FRAMING)
@pytest.mark.parametrize("route", ALL_ROUTES)
def test_bad_framing_is_refused_on_every_route(wire, route, framing):
    wire.assert_refused(wire.integration(route, **framing))


@pytest.mark.parametrize("framing", HEADER_FRAMING)
def test_bad_framing_on_the_token_view_is_refused(wire, token_client, framing):
    wire.assert_refused(wire.send("/api/ws-token/", client=token_client, **{"body": b"", **framing}))


@pytest.mark.parametrize("framing", BODY_FRAMING)
@pytest.mark.parametrize("route", MESSAGE_ROUTES)
def test_body_not_matching_its_length_is_refused(wire, route, framing):
    wire.assert_refused(wire.integration(route, **framing))


# --- handler names and channels in messages ---------------------------------------------------


@pytest.mark.parametrize("name", HANDLER_NAMES)
@pytest.mark.parametrize("key", ["handler", "action"])
@pytest.mark.parametrize("path", ["/open/", "/explicit/"])
@pytest.mark.parametrize("route", MESSAGE_ROUTES)
def test_unknown_private_or_ill_typed_handler_name_is_refused(wire, route, path, key, name):
    # OpenView (ALLOWED_HANDLERS = ["echo"]) and ExplicitView (@handler shout) keep the base
    # default, which refuses: nothing may run, and the refused message is not counted.
    body = json.dumps({key: name}).encode()
    wire.assert_refused(wire.integration(route, path=path, body=body))


@pytest.mark.parametrize("channel", [pytest.param(MISSING, id="missing"), *CHANNELS])
@pytest.mark.parametrize("route", MESSAGE_ROUTES)
def test_change_channel_to_an_invalid_channel_is_refused(wire, route, channel):
    message = {"handler": "change_channel"}
    if channel is not MISSING:
        message["channel"] = channel
    wire.assert_refused(wire.integration(route, body=json.dumps(message).encode()))


# --- the connect query string -----------------------------------------------------------------

BAD_CONNECT_QUERIES = [
    pytest.param([("channel", "room-1"), ("channel", "room-2")], id="channel-repeated"),
    pytest.param([("channel", "room-1"), ("channel", "bad name")], id="channel-repeated-last-invalid"),
    pytest.param([("channel", "bad name"), ("channel", "room-1")], id="channel-repeated-first-invalid"),
    pytest.param([("channel", "x" * 129)], id="channel-129-chars"),
    pytest.param([("channel", "x" * 100_000)], id="channel-100k-chars"),
    pytest.param([("channel", "r\u00fcm")], id="channel-unicode"),
    pytest.param([("channel", "\uff52\uff4f\uff4f\uff4d")], id="channel-fullwidth"),
    pytest.param("channel=%FF%FE", id="channel-not-utf8"),
    pytest.param("channel=room%00", id="channel-nul"),
    pytest.param("channel=room%0A", id="channel-newline"),
    pytest.param([("channel", "a/b")], id="channel-slash"),
    pytest.param([("ws_token", "a" * 100_000)], id="ws_token-100k-chars"),
    pytest.param([("ws_token", "\u00e9" * 40)], id="ws_token-unicode"),
    pytest.param("ws_token=%FF" * 40, id="ws_token-not-utf8"),
    pytest.param([("ws_token", "")], id="ws_token-empty"),
    pytest.param([("ws_token", "junk-junk-junk-junk-junk"), ("ws_token", "VALID")], id="ws_token-repeated-last-valid"),
    pytest.param([("ws_token", "VALID"), ("ws_token", "junk-junk-junk-junk-junk")], id="ws_token-repeated-first-valid"),
    pytest.param([("x", "1")] * 2_000, id="2000-parameters"),
]


# An empty channel (``channel=`` or a bare ``channel``) is not hostile: it means the record's
# default channel, as 4.x clients that always add the parameter expect (test_connect.py).
@pytest.mark.parametrize("query", BAD_CONNECT_QUERIES)
def test_bad_connect_query_is_refused_and_keeps_the_token(wire, query):
    if isinstance(query, list):
        has_token = any(name == "ws_token" for name, _ in query)
        pairs = [(name, wire.token if value == "VALID" else value) for name, value in query]
        if not has_token:
            pairs.insert(0, ("ws_token", wire.token))
        query = urlencode(pairs)
    elif not query.startswith("ws_token"):
        query = urlencode({"ws_token": wire.token}) + "&" + query
    wire.assert_refused(wire.integration("connect", query=query))


BAD_ORIGINS = [
    pytest.param("https://[::1", id="unclosed-ipv6-bracket"),
    pytest.param("https://www.example.com]", id="stray-bracket"),
    pytest.param("https://www.example.com:99999", id="port-out-of-range"),
    pytest.param("https://www.example.com:abc", id="port-not-numeric"),
    pytest.param("https://www.example.com/path", id="with-path"),
    pytest.param("https://user@www.example.com", id="with-userinfo"),
    pytest.param("https://www.example.com\x00.evil.io", id="nul"),
    pytest.param("https://" + "a" * 10_000 + ".example.com", id="very-long"),
    pytest.param("javascript:alert(1)", id="javascript-scheme"),
    pytest.param("null", id="null"),
]


@pytest.mark.parametrize("origin", BAD_ORIGINS)
def test_bad_origin_on_connect_is_refused(wire, origin):
    wire.assert_refused(wire.integration("connect", headers={"Origin": origin}))


# --- connectionId and the proof of origin -----------------------------------------------------

BAD_CONNECTION_IDS = [
    pytest.param({"drop": [protocol.HEADER_CONNECTION_ID]}, id="missing"),
    pytest.param({"connection_id": ""}, id="empty"),
    pytest.param({"connection_id": "L0SM9cOFvHcCIhw=,L0SM9cOFvHcCIhx="}, id="duplicated-header"),
    pytest.param({"connection_id": "A" * (protocol.CONNECTION_ID_MAX_LENGTH + 1)}, id="129-chars"),
    pytest.param({"connection_id": "A" * 100_000}, id="100k-chars"),
    pytest.param({"connection_id": "abc def"}, id="space"),
    pytest.param({"connection_id": "abc\x00"}, id="nul"),
    pytest.param({"connection_id": "abc\n"}, id="trailing-newline"),
    pytest.param({"connection_id": "caf\u00e9"}, id="non-ascii"),
    pytest.param({"connection_id": "../../etc"}, id="dot-dot-slash"),
    pytest.param({"connection_id": "%2e%2e"}, id="percent"),
]


@pytest.mark.parametrize("change", BAD_CONNECTION_IDS)
@pytest.mark.parametrize("route", ALL_ROUTES)
def test_missing_or_invalid_connection_id_is_refused(wire, route, change):
    wire.assert_refused(wire.integration(route, **change))


@pytest.mark.parametrize(
    "api_id",
    [
        pytest.param("{api}", id="own-api-id"),
        pytest.param("unknownapi", id="unknown-api-id"),
        pytest.param("", id="empty-api-id"),
        pytest.param("{api}\x00", id="api-id-nul"),
        pytest.param("a" * 100_000, id="api-id-100k-chars"),
    ],
)
@pytest.mark.parametrize("route", ["disconnect", *MESSAGE_ROUTES])
def test_unknown_connection_id_is_refused(wire, route, api_id):
    headers = {protocol.HEADER_API_ID: wire.fill(api_id)}
    wire.assert_refused(wire.integration(route, connection_id=new_connection_id(), headers=headers))


@pytest.mark.parametrize("route", ["disconnect", *MESSAGE_ROUTES])
def test_connection_of_another_api_is_refused(wire, other_gateway, route):
    WebSocketSession.objects.filter(pk=wire.session_row.pk).update(api_gateway=other_gateway)
    wire.assert_refused(wire.integration(route))


def test_connect_with_a_registered_connection_id_is_refused(wire):
    wire.assert_refused(wire.integration("connect", connection_id=wire.session_row.connection_id))


BAD_PROOFS = [
    pytest.param({"drop": [protocol.HEADER_SECRET]}, id="secret-missing"),
    pytest.param({"headers": {protocol.HEADER_SECRET: ""}}, id="secret-empty"),
    pytest.param({"headers": {protocol.HEADER_SECRET: "wrong"}}, id="secret-wrong"),
    pytest.param({"headers": {protocol.HEADER_SECRET: "{other_secret}"}}, id="secret-of-another-api"),
    pytest.param({"headers": {protocol.HEADER_SECRET: "{secret} "}}, id="secret-trailing-space"),
    pytest.param({"headers": {protocol.HEADER_SECRET: "{secret},{secret}"}}, id="secret-duplicated-header"),
    pytest.param({"headers": {protocol.HEADER_SECRET: "s" * 100_000}}, id="secret-100k-chars"),
    pytest.param({"headers": {protocol.HEADER_SECRET: "s\u00e9cr\u00e9t\x00"}}, id="secret-non-ascii-nul"),
    pytest.param({"drop": [protocol.HEADER_API_ID]}, id="api-id-missing"),
    pytest.param({"headers": {protocol.HEADER_API_ID: ""}}, id="api-id-empty"),
    pytest.param({"headers": {protocol.HEADER_API_ID: "unknownapi"}}, id="api-id-unknown"),
    pytest.param({"headers": {protocol.HEADER_API_ID: "{other_api}"}}, id="api-id-of-another-api"),
    pytest.param({"headers": {protocol.HEADER_API_ID: "{API}"}}, id="api-id-upper-case"),
    pytest.param({"headers": {protocol.HEADER_API_ID: "{api},{api}"}}, id="api-id-duplicated-header"),
    pytest.param({"headers": {protocol.HEADER_API_ID: "a" * 100_000}}, id="api-id-100k-chars"),
    pytest.param({"headers": {protocol.HEADER_API_ID: "{api}\x00"}}, id="api-id-nul"),
    pytest.param({"headers": {protocol.HEADER_API_ID: "{api}\u00e9"}}, id="api-id-non-ascii"),
]


@pytest.mark.parametrize("change", BAD_PROOFS)
@pytest.mark.parametrize("route", ALL_ROUTES)
def test_missing_or_wrong_proof_of_origin_is_refused(wire, other_gateway, route, change):
    headers = {name: wire.fill(value, other_gateway) for name, value in change.get("headers", {}).items()}
    wire.assert_refused(wire.integration(route, headers=headers, drop=change.get("drop", ())))


# --- a message on a row marked disconnected ---------------------------------------------------


@pytest.fixture
def handler_calls(monkeypatch):
    """Names of the ChatView handlers that ran, and message_received signals sent."""
    calls = []
    ChatView.get_allowed_handlers()  # computed (and cached) from the real methods, not the spies
    for name in ("default", "whoami", "ping", "change_channel"):
        original = getattr(ChatView, name)

        @functools.wraps(original)  # keeps the @handler mark
        def spy(self, request, *args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(self, request, *args, **kwargs)

        monkeypatch.setattr(ChatView, name, spy)

    def on_message(sender, handler, **kwargs):
        calls.append(f"signal:{handler}")

    signals.message_received.connect(on_message)
    yield calls
    signals.message_received.disconnect(on_message)


@pytest.mark.parametrize(
    "message",
    [
        pytest.param({"handler": "whoami"}, id="whoami"),
        pytest.param({"handler": "ping"}, id="ping"),
        pytest.param({"handler": "change_channel", "channel": "room-9"}, id="change_channel"),
        pytest.param({}, id="default"),
    ],
)
@pytest.mark.parametrize("route", MESSAGE_ROUTES)
def test_message_on_a_disconnected_row_is_refused_and_runs_nothing(wire, handler_calls, route, message):
    WebSocketSession.objects.filter(pk=wire.session_row.pk).update(connected=False)
    wire.assert_refused(wire.integration(route, body=json.dumps(message).encode()))
    assert handler_calls == []
