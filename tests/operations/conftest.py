from django.conf import settings

# These tests need the opt-in operations app: tests/monitoring/test_operations_app.py runs them
# under tests.settings_operations. Elsewhere they are not collected (rather than listed as skips).
if "django_aws_api_gateway_websockets.operations" not in settings.INSTALLED_APPS:
    collect_ignore_glob = ["test_*.py"]
