from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "django_aws_api_gateway_websockets.operations"
    label = "aws_websockets_operations"
    verbose_name = "WebSocket operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import counters

        counters.connect_receivers()
