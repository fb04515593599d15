"""Demo settings: SQLite, the local gateway on 127.0.0.1:8001, Django on 127.0.0.1:8000."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "demo-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
DJANGO_PORT = os.environ.get("DEMO_DJANGO_PORT", "8000")
CSRF_TRUSTED_ORIGINS = [f"http://127.0.0.1:{DJANGO_PORT}", f"http://localhost:{DJANGO_PORT}"]
if "DEMO_TRUSTED_ORIGINS" in os.environ:  # the browser tests replay the newcomer's "Origin not allowed" trap
    CSRF_TRUSTED_ORIGINS = os.environ["DEMO_TRUSTED_ORIGINS"].split()
if "DEMO_CACHE_DIR" in os.environ:
    # `runwsgateway --lambda` answers $connect in its own process: why a connect was refused must
    # be in a cache the site's process reads too (refusals.py).
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": os.environ["DEMO_CACHE_DIR"],
        }
    }

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_aws_api_gateway_websockets",
    "django_aws_api_gateway_websockets.operations",  # per-minute counters and the admin's live charts
    "chat",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "demo_project.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DB", BASE_DIR / "db.sqlite3"),
        # Requests run in transactions: IMMEDIATE makes concurrent writers wait for the lock.
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
    }
}
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "/static/"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "room"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Typing indicators are client events ("whisper"): off by default, allowed on the chat rooms.
WEBSOCKETS = {"client_events_channels": ["lobby", "python", "django", "staff"]}

# No AWS account: the local gateway's Management API needs no credentials.
AWS_GATEWAY_REGION_NAME = "us-east-1"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_aws_api_gateway_websockets": {"handlers": ["console"], "level": "INFO"}},
}
