"""Broadcasts handed to Celery in chunks: eagerly, and through a real worker and broker."""

import datetime

import pytest

celery = pytest.importorskip("celery")

from celery.contrib.testing.worker import start_worker  # noqa: E402

from django_aws_api_gateway_websockets.models import ApiGateway, WebSocketSession  # noqa: E402
from django_aws_api_gateway_websockets.sending import MessageTooLarge  # noqa: E402
from django_aws_api_gateway_websockets.tasks import broadcast_in_chunks  # noqa: E402

from ..management_server import ManagementServer  # noqa: E402


def make_app(**conf):
    app = celery.Celery("tests", set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json", **conf)
    return app


@pytest.fixture
def eager_app():
    app = make_app(task_always_eager=True, task_eager_propagates=True, task_store_eager_result=True)
    previous = celery._state.get_current_app()
    app.set_current()
    yield app
    previous.set_current()


@pytest.fixture
def server():
    with ManagementServer() as server:
        yield server


def connected_rows(server, n, *, channel="all", prefix="c"):
    gateway, _ = ApiGateway.objects.get_or_create(
        api_name="local", api_id="local1", defaults={"management_endpoint_url": server.url}
    )
    WebSocketSession.objects.bulk_create(
        [WebSocketSession(connection_id=f"{prefix}{i}", channel_name=channel, api_gateway=gateway) for i in range(n)]
    )


@pytest.mark.django_db
def test_chunks_cover_every_connected_row_once(eager_app, server):
    connected_rows(server, 7)
    connected_rows(server, 2, prefix="gone-")
    connected_rows(server, 3, channel="other", prefix="o")
    WebSocketSession.objects.filter(connection_id="c6").update(connected=False)
    results = broadcast_in_chunks(WebSocketSession.objects.in_channel("all"), {"n": 1}, chunk_size=3)
    # 6 connected + 2 that turn out gone = 8 rows: chunks of 3, 3, 2.
    assert [r.get() for r in results] == [
        {"delivered": 3, "gone": 0, "failed": {}, "throttled_retries": 0},
        {"delivered": 3, "gone": 0, "failed": {}, "throttled_retries": 0},
        {"delivered": 0, "gone": 2, "failed": {}, "throttled_retries": 0},
    ]
    assert sorted(server.received) == [f"c{i}" for i in range(6)]
    assert all(messages == [{"n": 1}] for messages in server.received.values())
    assert not WebSocketSession.objects.filter(connection_id__startswith="gone-", connected=True).exists()


@pytest.mark.django_db
def test_message_is_encoded_once_by_the_caller(eager_app, server):
    connected_rows(server, 1)
    stamp = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    broadcast_in_chunks(WebSocketSession.objects.all(), {"at": stamp})
    # DjangoJSONEncoder's form, even though Celery's own JSON would have carried a datetime.
    assert server.received["c0"] == [{"at": "2026-01-02T03:04:05Z"}]


@pytest.mark.django_db
def test_bad_input_enqueues_nothing(eager_app, server):
    connected_rows(server, 2)
    with pytest.raises(MessageTooLarge):
        broadcast_in_chunks(WebSocketSession.objects.all(), "a" * (1024 * 1024 + 1))
    with pytest.raises(ValueError, match="chunk_size"):
        broadcast_in_chunks(WebSocketSession.objects.all(), "hi", chunk_size=0)
    with pytest.raises(ValueError, match="UTF-8"):
        broadcast_in_chunks(WebSocketSession.objects.all(), b"\xff\xfe")
    assert server.calls == {}


@pytest.mark.django_db
def test_nothing_connected_enqueues_nothing(eager_app, server):
    assert broadcast_in_chunks(WebSocketSession.objects.all(), "hi") == []


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_sends_the_chunks(server):
    # Messages through a broker, serialised as JSON, run by a worker thread with its own DB connection.
    app = make_app(
        broker_url="memory://", result_backend="cache+memory://", broker_transport_options={"polling_interval": 0.01}
    )
    previous = celery._state.get_current_app()
    app.set_current()
    try:
        connected_rows(server, 5)
        with start_worker(app, perform_ping_check=False, shutdown_timeout=30):
            results = broadcast_in_chunks(WebSocketSession.objects.all(), {"hello": "world"}, chunk_size=2)
            assert [r.get(timeout=30)["delivered"] for r in results] == [2, 2, 1]
    finally:
        previous.set_current()
    assert sorted(server.received) == [f"c{i}" for i in range(5)]
