"""The Celery app of the multi-worker benchmark (``celery -A bench.celery_app worker``)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings_multiworker")

import django  # noqa: E402

django.setup()

from celery import Celery  # noqa: E402

app = Celery("bench")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.set_default()

import django_aws_api_gateway_websockets.tasks  # noqa: E402,F401  (registers send_to_session_chunk)
