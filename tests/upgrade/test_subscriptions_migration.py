"""Migration 0009 (issue #25): a 5.0 database's connections keep their channel as their first
subscription; a connection without a channel gets none."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

APP = "django_aws_api_gateway_websockets"
BEFORE, AFTER = (APP, "0008_lambda_integration"), (APP, "0009_subscriptions")


@pytest.mark.django_db(transaction=True)
def test_migration_0009_copies_each_rows_channel_into_a_subscription():
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    try:
        old = executor.loader.project_state([BEFORE]).apps
        Session = old.get_model(APP, "WebSocketSession")
        Session.objects.create(connection_id="a", channel_name="room-1")
        Session.objects.create(connection_id="b", channel_name="room-1", connected=False)
        Session.objects.create(connection_id="c", channel_name="")
        executor = MigrationExecutor(connection)
        executor.migrate([AFTER])
        new = executor.loader.project_state([AFTER]).apps
        Subscription = new.get_model(APP, "Subscription")
        held = sorted(Subscription.objects.values_list("connection__connection_id", "channel"))
        assert held == [("a", "room-1"), ("b", "room-1")]
    finally:
        MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
