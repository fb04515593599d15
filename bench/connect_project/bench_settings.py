"""The project both packages run in for bench/connect.py: the same settings, URLs and requests.

BENCH_TARGET is "ours" (this work tree) or "41" (the 4.1.0 wheel, in its own virtualenv);
BENCH_PG_NAME the PostgreSQL database. Only what a target's package needs differs.
"""

import os

TARGET = os.environ.get("BENCH_TARGET", "ours")
SECRET_KEY = "bench-connect-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["bench.example.com"]
CSRF_TRUSTED_ORIGINS = ["https://bench.example.com"]
ROOT_URLCONF = "bench_urls"
WSGI_APPLICATION = "bench_wsgi.application"
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
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("BENCH_PG_NAME", "bench_connect"),
        "USER": os.environ.get("PGUSER", "postgres"),
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "5432"),
        "CONN_MAX_AGE": None,  # one connection per worker thread, as a production setup keeps
    }
}
AWS_GATEWAY_REGION_NAME = "us-east-1"
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
# The limiter on (the views keep RATE_LIMIT_ENABLED = True) with room for the run: 50 source
# IPs and 50 users share the requests.
MAX_ATTEMPTS = int(os.environ.get("BENCH_RATE_LIMIT", 100_000))
GATEWAY_SECRET_41 = "bench-secret-0123456789abcdefghijklmnopqrstuv"
if TARGET == "41":
    WEBSOCKETS = {
        "rate_limit_max_attempts": MAX_ATTEMPTS,
        "token_expiry_seconds": 3600,
        "push_changes_to_aws": False,
        "gateway_secret": GATEWAY_SECRET_41,
    }
else:
    WEBSOCKETS = {"rate_limit_max_attempts": MAX_ATTEMPTS, "token_expiry_seconds": 3600}
    if os.environ.get("BENCH_RATE_LIMIT_CACHE"):  # e.g. redis://127.0.0.1:6390/0
        CACHES = {
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "ratelimit": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": os.environ["BENCH_RATE_LIMIT_CACHE"],
            },
        }
        WEBSOCKETS["rate_limit_cache"] = "ratelimit"
