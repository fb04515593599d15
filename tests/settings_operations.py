"""tests.settings plus the opt-in operations app (tests/operations/, run by tests/monitoring/test_operations_app.py)."""

from tests.settings import *  # noqa: F401,F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "django_aws_api_gateway_websockets.operations"]
