"""Django's own security settings a deployment relies on (``check --deploy``)."""

from django.conf import settings
from django.core.checks import register

from .messages import NAMESPACE, Template

W020 = Template("W020", "DEBUG is on.", hint="Set DEBUG = False in production.")
W021 = Template("W021", "{name} is False.", hint="Set {name} = True: tokens are fetched with these cookies.")
W022 = Template(
    "W022",
    "CSRF_TRUSTED_ORIGINS lists non-https origins: {origins}.",
    hint="Pages on these origins may fetch tokens and open sockets ($connect checks Origin "
    "against this list); list https origins only.",
)


@register(NAMESPACE, deploy=True)
def check_django_settings(app_configs, **kwargs):
    messages = []
    if settings.DEBUG:
        messages.append(W020())
    for name in ("SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"):
        if not getattr(settings, name, False):
            messages.append(W021(name=name))
    insecure = [o for o in getattr(settings, "CSRF_TRUSTED_ORIGINS", []) if not o.startswith("https://")]
    if insecure:
        messages.append(W022(origins=", ".join(insecure)))
    return messages
