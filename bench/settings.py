"""Settings for the benchmarks: a SQLite file shared by the bench and the gateway process."""

import os

SECRET_KEY = "bench-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "bench.urls"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django_aws_api_gateway_websockets",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ.get("BENCH_DB", "/tmp/ws-bench.sqlite3")}
}
AWS_GATEWAY_REGION_NAME = "us-east-1"
