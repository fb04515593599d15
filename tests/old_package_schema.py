"""The old package's tables after its migration 0009, as reference/upstream-notes.md §1.4 lists them.

Built independently of this package's models (an isolated app registry, plain id columns for the
foreign keys) so the upgrade tests read tables the way a 4.x project has them.
"""

from django.apps.registry import Apps
from django.db import models

old_apps = Apps()

OLD_MIGRATIONS = [
    "0001_initial",
    "0002_rename_author_user",
    "0003_apigateway_websocketsession_api_gateway",
    "0004_deployment_id_additional_routes",
    "0005_deployed",
    "0006_route_key_unique_together",
    "0007_rate_limits_and_tokens",
    "0008_rename_tables",
    "0009_default_table_names",
]


class Old:
    apps = old_apps
    app_label = "old_websockets"


class OldApiGateway(models.Model):
    api_name = models.CharField(max_length=255, unique=True)
    api_description = models.CharField(max_length=255, blank=True, default="")
    default_channel_name = models.CharField(max_length=128, blank=True, default="")
    domain_name = models.CharField(max_length=255, blank=True, default="")
    target_base_endpoint = models.URLField(null=True, blank=True)
    certificate_arn = models.CharField(max_length=255, blank=True, default="")
    hosted_zone_id = models.CharField(max_length=32, blank=True, default="")
    api_key_selection_expression = models.CharField(max_length=255, default="$request.header.x-api-key")
    route_selection_expression = models.CharField(max_length=255, default="$request.body.action")
    route_key = models.CharField(max_length=255, default="$default")
    stage_name = models.CharField(max_length=63, blank=True, default="production")
    stage_description = models.CharField(max_length=63, blank=True, default="")
    deployment_id = models.CharField(max_length=32, blank=True, default="")
    tags = models.JSONField(blank=True, default=dict)
    api_id = models.CharField(max_length=32, blank=True, default="", db_index=True)
    api_endpoint = models.CharField(max_length=255, blank=True, default="")
    api_gateway_domain_name = models.CharField(max_length=255, blank=True, default="")
    api_mapping_id = models.CharField(max_length=128, blank=True, default="")
    api_created = models.BooleanField(default=False)
    custom_domain_created = models.BooleanField(default=False)
    created_on = models.DateTimeField()
    updated_on = models.DateTimeField()

    class Meta(Old):
        db_table = "django_aws_api_gateway_websockets_apigateway"


class OldAdditionalRoute(models.Model):
    api_gateway_id = models.IntegerField()
    name = models.CharField(max_length=63)
    route_key = models.CharField(max_length=64, db_index=True)
    integration_url = models.URLField()
    deployed = models.BooleanField(default=False)
    created_on = models.DateTimeField()
    updated_on = models.DateTimeField()

    class Meta(Old):
        db_table = "django_aws_api_gateway_websockets_apigatewayadditionalroute"


class OldWebSocketSession(models.Model):
    connection_id = models.CharField(max_length=255, unique=True)
    channel_name = models.CharField(max_length=128, blank=True, default="")
    user_id = models.IntegerField(null=True)
    connected = models.BooleanField(default=True)
    api_gateway_id = models.IntegerField(null=True)
    request_count = models.PositiveBigIntegerField(default=1)
    created_on = models.DateTimeField()
    updated_on = models.DateTimeField()

    class Meta(Old):
        db_table = "django_aws_api_gateway_websockets_websocketsession"


class OldWebSocketToken(models.Model):
    token = models.CharField(max_length=64, unique=True)  # in clear, in the old package
    user_id = models.IntegerField()
    session_key = models.CharField(max_length=40, db_index=True)
    created_at = models.DateTimeField()
    used = models.BooleanField(default=False)

    class Meta(Old):
        db_table = "django_aws_api_gateway_websockets_websockettoken"


class OldConnectionRateLimit(models.Model):
    ip_address = models.GenericIPAddressField(db_index=True)
    user_id = models.IntegerField(null=True)
    attempt_time = models.DateTimeField(db_index=True)
    successful = models.BooleanField(default=False)

    class Meta(Old):
        db_table = "django_aws_api_gateway_websockets_connectionratelimit"


OLD_MODELS = (OldApiGateway, OldAdditionalRoute, OldWebSocketSession, OldWebSocketToken, OldConnectionRateLimit)
