"""The steps every route starts with: the gateway's proof of origin and, on messages and
``$disconnect``, the connection's row (docs/security.md, docs/architecture.md)."""

from django.contrib.auth.models import AnonymousUser

from .. import protocol, security, signals
from ..db import sessions as session_sql
from ..gateway_lookup import get_gateway
from .refusal import refuse


def authenticate_gateway(view, request, gateway) -> None:
    """The request comes from a registered API and carries its proof: the secret over HTTP, or
    (a record with the Lambda proxy integration) the Lambda handler's invocation, which no
    HTTP request can carry (security.integration_trusted). Sets ``view.api_gateway``."""
    api_id = request.headers.get(protocol.HEADER_API_ID, "")
    if gateway is None or not api_id or gateway.api_id != api_id:
        refuse(403, "Unknown API.", signals.REASON_SECRET)
    if view.aws_api_gateway_id and api_id != view.aws_api_gateway_id:
        refuse(403, "Unknown API.", signals.REASON_SECRET)
    if not security.integration_trusted(gateway, request):
        if gateway.integration_type == security.AWS_PROXY or security.lambda_invocation(request) is not None:
            refuse(403, "Not an event of this API's Lambda integration.", signals.REASON_SECRET)
        refuse(403, "Invalid gateway secret.", signals.REASON_SECRET)
    view.api_gateway = gateway


def load_connection(view, request, *, session_expiry=True):
    """The connection's row with its gateway and user: one query for the whole request; then
    its gateway's secret. Sets ``view.websocket_session`` and ``request.user``.
    ``session_expiry``: with it the Django session's (db.sessions.load_connection)."""
    session = session_sql.load_connection(view.connection_id, session_expiry=session_expiry)
    # No row: the API id's record decides, so a forged request gets 403 and a genuine one 404.
    gateway = session.api_gateway if session is not None else get_gateway(request.headers.get(protocol.HEADER_API_ID))
    authenticate_gateway(view, request, gateway)
    if session is None:
        refuse(404, "Unknown connection.")
    view.websocket_session = session
    request.user = session.user or AnonymousUser()
    return session
