"""bench/settings.py plus what the multi-worker broadcast needs: Celery on Redis, and how the
worker processes share AWS's account-level call rate (bench/multiworker.py sets the env)."""

import os

from bench.settings import *  # noqa: F401,F403

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
CELERY_BROKER_URL = f"{REDIS_URL}/0"
CELERY_RESULT_BACKEND = f"{REDIS_URL}/1"
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "send-rate": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": f"{REDIS_URL}/2"},
}
WEBSOCKETS = {
    "send_max_calls_per_second": int(os.environ.get("BENCH_ACCOUNT_RATE", 10_000)),
    "send_rate_processes": int(os.environ.get("BENCH_SEND_PROCESSES", 1)),
    "send_rate_limit_cache": os.environ.get("BENCH_RATE_CACHE", ""),
}
