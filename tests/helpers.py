"""Small helpers the test modules share (fixtures live in conftest.py)."""

from django_aws_api_gateway_websockets.testing.client import new_connection_id


def connect(post_as_gateway, query="", path="/ws/", connection_id=None, **kwargs):
    """A ``$connect`` as API Gateway sends it: ``(connection id, response)``."""
    cid = connection_id or new_connection_id()
    return cid, post_as_gateway(path, cid, route="connect", query=query, **kwargs)
