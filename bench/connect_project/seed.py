"""Run by bench/connect.py under each target's interpreter: migrate, then users, their login
sessions, the gateway record and one fresh token per connect, with that package's own API.
Writes JSON: the gateway's api id and secret, and per connect (cookie, raw token)."""

import json
import secrets
import sys

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from django.core.management import call_command  # noqa: E402

from django_aws_api_gateway_websockets import models  # noqa: E402

n_connects, n_users, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
call_command("migrate", verbosity=0)
User = get_user_model()
users = User.objects.bulk_create([User(username=f"bench{i}", is_active=True) for i in range(n_users)])
users = list(User.objects.order_by("pk"))
sessions = []
for user in users:
    store = SessionStore()
    store["_auth_user_id"] = str(user.pk)
    store["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    store["_auth_user_hash"] = user.get_session_auth_hash()
    store.create()
    sessions.append(store.session_key)

if settings.TARGET == "41":
    gateway = models.ApiGateway.objects.create(api_name="bench", api_id="bench00001", stage_name="bench")
    secret = settings.GATEWAY_SECRET_41
    raws, rows = [], []
    for i in range(n_connects):
        raw = secrets.token_hex(32)  # 4.1.0 stores the raw value
        u = i % n_users
        rows.append(models.WebSocketToken(token=raw, user=users[u], session_key=models.hash_session_key(sessions[u])))
        raws.append(raw)
    models.WebSocketToken.objects.bulk_create(rows, batch_size=2000)
else:
    from django_aws_api_gateway_websockets import login, tokens

    gateway = models.ApiGateway.objects.create(
        api_name="bench", api_id="bench00001", stage_name="bench", region="us-east-1"
    )
    secret = gateway.integration_secret
    raws, rows = [], []
    for i in range(n_connects):
        raw = secrets.token_urlsafe(tokens.RAW_TOKEN_BYTES)
        u = i % n_users
        rows.append(
            models.WebSocketToken(
                token=tokens.hash_token(raw), user=users[u], session_key=login.hash_session_key(sessions[u])
            )
        )
        raws.append(raw)
    models.WebSocketToken.objects.bulk_create(rows, batch_size=2000)

with open(out, "w") as f:
    json.dump(
        {
            "api_id": gateway.api_id,
            "secret": secret,
            "connects": [
                {"session": sessions[i % n_users], "token": raws[i], "user": i % n_users} for i in range(n_connects)
            ],
        },
        f,
    )
