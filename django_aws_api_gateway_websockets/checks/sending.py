"""The send settings that need more than a type: ``send_transport`` is deprecated (W070),
``send_backend`` must import (E071). (Registered from conf.py before 5.0's checks package.)"""

from django.conf import settings
from django.core.checks import register

from .. import conf
from .messages import NAMESPACE, Template

W070 = Template(
    "W070",
    'WEBSOCKETS["send_transport"] is deprecated; it means "send_backend": "{backend}".',
    hint='Replace it with WEBSOCKETS["send_backend"] (docs/sending.md, Backends).',
)
E071 = Template(
    "E071",
    'WEBSOCKETS["send_backend"] cannot be imported: {exc}',
    hint="A dotted path to a class, e.g. django_aws_api_gateway_websockets.backends.Boto3Backend.",
)


@register(NAMESPACE)
def check_send_settings(app_configs, **kwargs):
    """``send_transport`` is deprecated (W070); ``send_backend`` must import (E071)."""
    user = getattr(settings, "WEBSOCKETS", None)
    if not isinstance(user, dict):
        return []
    messages = []
    transport = user.get("send_transport")
    if transport and conf.value_problem("send_transport", transport) is None:
        messages.append(W070(backend=conf.SEND_TRANSPORT_BACKENDS[transport]))
    backend = user.get("send_backend")
    if isinstance(backend, str) and backend and backend != conf.DEFAULTS["send_backend"]:
        from django.utils.module_loading import import_string

        try:
            import_string(backend)
        except ImportError as exc:
            messages.append(E071(exc=exc))
    return messages
