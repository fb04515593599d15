"""An in-memory Management API (SPEC §4) behind the real boto3 client.

Installed on botocore's ``before-send`` event, so requests are serialised and signed as
usual and answers are parsed by botocore: a gone connection raises ``GoneException`` exactly
as against AWS.
"""

import json
from collections import defaultdict
from urllib.parse import unquote, urlsplit

from botocore import UNSIGNED
from botocore.awsrequest import AWSResponse

from .. import aws, transport

EVENT = "before-send.apigatewaymanagementapi"
SIGNER_EVENT = "choose-signer.apigatewaymanagementapi"


class _Body:
    def __init__(self, data):
        self.data = data

    def stream(self, **kwargs):
        yield self.data


def _unsigned(**kwargs):
    return UNSIGNED


def _response(url, status, body=None, error=None):
    headers = {"Content-Type": "application/json"}
    if error:
        headers["x-amzn-ErrorType"] = error
        body = {"message": error}
    data = json.dumps(body).encode() if body is not None else b""
    return AWSResponse(url, status, headers, _Body(data))


class ManagementAPICapture:
    """Records every ``@connections`` call; use as a context manager.

    ``messages[connection_id]`` lists the decoded messages posted to a connection (JSON
    decoded when possible). Connections marked gone (``mark_gone``, or closed with DELETE)
    answer 410 like AWS.
    """

    active = None  # the capture installed now, shared by every WebSocketTestClient

    def __init__(self):
        self.messages = defaultdict(list)
        self.gone = set()
        self.deleted = []

    def __enter__(self):
        # Clients copy the session's event handlers when built: start from fresh ones.
        aws.clear_clients()
        events = aws._get_session().events
        events.register(EVENT, self._handle)
        # Nothing leaves the process, so no AWS credentials are needed to sign.
        events.register(SIGNER_EVENT, _unsigned)
        ManagementAPICapture.active = self
        self._boto3_only = transport.boto3_only()
        self._boto3_only.__enter__()
        return self

    def __exit__(self, *exc_info):
        events = aws._get_session().events
        events.unregister(EVENT, self._handle)
        events.unregister(SIGNER_EVENT, _unsigned)
        ManagementAPICapture.active = None
        self._boto3_only.__exit__(*exc_info)
        aws.clear_clients()

    def mark_gone(self, connection_id):
        self.gone.add(connection_id)

    def sent_to(self, connection_id):
        return list(self.messages.get(connection_id, []))

    def _handle(self, request, **kwargs):
        url = request.url
        path = urlsplit(url).path
        marker = "/@connections/"
        if marker not in path:
            return _response(url, 404, error="NotFoundException")
        connection_id = unquote(path.split(marker, 1)[1])
        if connection_id in self.gone:
            return _response(url, 410, error="GoneException")
        if request.method == "POST":
            body = request.body or b""
            if hasattr(body, "read"):
                body = body.read()
            try:
                message = json.loads(body)
            except ValueError:
                message = body
            self.messages[connection_id].append(message)
            return _response(url, 200)
        if request.method == "DELETE":
            self.deleted.append(connection_id)
            self.gone.add(connection_id)
            return _response(url, 204)
        return _response(
            url,
            200,
            {
                "connectedAt": "2026-01-01T00:00:00Z",
                "lastActiveAt": "2026-01-01T00:00:00Z",
                "identity": {"sourceIp": "127.0.0.1", "userAgent": "test"},
            },
        )
