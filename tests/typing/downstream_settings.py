"""The smallest settings a project using the package has: what django-stubs' mypy plugin loads
to type-check ``downstream.py`` (``nox -s typing``)."""

SECRET_KEY = "typing-only"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django_aws_api_gateway_websockets",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True
WEBSOCKETS = {"send_backend": "django_aws_api_gateway_websockets.testing.InMemoryBackend"}
