from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DjangoAwsApiGatewayWebsocketsConfig(AppConfig):
    name = "django_aws_api_gateway_websockets"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = _("WebSockets (AWS API Gateway)")  # the admin section, shown in capitals

    def ready(self):
        from . import (  # noqa: F401  (registers checks and receivers)
            channel_access,
            checks,
            gateway_lookup,
            log_context,
            login,
            receivers,
        )

        login.connect_receivers()
        channel_access.connect_receivers()
        log_context.install_token_redaction()  # runserver's request lines carry ?ws_token=
