"""Runs INSIDE the old package's virtualenv (never imported by our test process).

Usage: python seed_old.py MANIFEST_PATH   (DJANGO_SETTINGS_MODULE set to the throwaway project)

Fills every table of the old app through the old package's own models, the way the old
package's views and admin would have written them, then writes a JSON manifest: what was
created (the semantic facts a test asserts after an upgrade), every row of every table of
the app as read back with raw SQL, and the schema as the database reports it.
"""

import datetime
import inspect
import json
import sys

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Permission  # noqa: E402
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.migrations.recorder import MigrationRecorder  # noqa: E402
from django.utils import timezone  # noqa: E402

from django_aws_api_gateway_websockets import models as old  # noqa: E402

APP = "django_aws_api_gateway_websockets"
HAS_41 = hasattr(old, "ChannelPermission")  # 4.1.0 features, detected, not assumed
PAST = datetime.datetime(2025, 3, 1, 12, 0, tzinfo=datetime.UTC)


def accepts(method, name):
    return name in inspect.signature(method).parameters


def save_without_aws(instance):
    """Save through the model's own save(); never reach AWS (4.1 takes push_to_aws)."""
    if accepts(type(instance).save, "push_to_aws"):
        instance.save(push_to_aws=False)
    else:
        instance.save()


def make_users():
    User = get_user_model()
    users = {
        "alice": User.objects.create_user("alice", "alice@example.com", "pw-alice"),
        "bob": User.objects.create_user("bob", "bob@example.com", "pw-bob", is_staff=True),
        "carol": User.objects.create_superuser("carol", "carol@example.com", "pw-carol"),
        "dave": User.objects.create_user("dave", "dave@example.com", "pw-dave"),
    }
    perms = {
        label: Permission.objects.get(content_type__app_label=label.split(".")[0], codename=label.split(".")[1])
        for label in ("auth.view_user", "auth.change_user", f"{APP}.view_apigateway")
    }
    users["dave"].user_permissions.add(perms["auth.view_user"], perms["auth.change_user"])
    return users, perms


def login_session(user):
    """A real django_session row, as a login makes; returns its key."""
    store = SessionStore()
    store["_auth_user_id"] = str(user.pk)
    store["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    store["_auth_user_hash"] = user.get_session_auth_hash()
    store.create()
    return store.session_key


def make_gateways():
    G = old.ApiGateway
    specs = [
        dict(
            api_name="chat",
            api_description="Chat API",
            default_channel_name="lobby",
            target_base_endpoint="https://www.example.com/ws/",
            api_id="abc123def4",
            api_endpoint="wss://abc123def4.execute-api.eu-west-1.amazonaws.com",
            deployment_id="dep123",
            api_created=True,
            tags={"team": "web", "env": "prod"},
            stage_name="production",
            stage_description="live",
            _status="deployed",
        ),
        dict(
            api_name="notifications",
            target_base_endpoint="https://www.example.com/notify",  # no slash: save adds it
            domain_name="ws.example.com",
            certificate_arn="arn:aws:acm:eu-west-1:123456789012:certificate/abcd-1234",
            hosted_zone_id="Z0123456789ABCDEFGHIJ",
            api_id="ntf987zyx6",
            api_endpoint="wss://ntf987zyx6.execute-api.eu-west-1.amazonaws.com",
            deployment_id="dep456",
            api_gateway_domain_name="d-abcdef1234.execute-api.eu-west-1.amazonaws.com",
            api_mapping_id="map-42",
            api_created=True,
            custom_domain_created=True,
            route_selection_expression="$request.body.route",
            _status="mapped",
        ),
        dict(
            api_name="half built",
            target_base_endpoint="https://staging.example.com/ws/",
            _status="creating",
            _last_error="ConflictException: an API named 'half built' is being created",
        ),
        dict(
            api_name="routes-failed",
            target_base_endpoint="https://www.example.com/other/",
            api_id="rtf555aaa1",
            api_key_selection_expression="$request.header.x-custom-key",
            stage_name="dev",
            _status="api_created",
            _last_error="BadRequestException: Invalid integration URI",
        ),
    ]
    gateways = {}
    for spec in specs:
        status = spec.pop("_status")
        last_error = spec.pop("_last_error", "")
        gateway = G(**spec)
        if HAS_41:
            gateway.provisioning_status = status
            gateway.last_error = last_error
        save_without_aws(gateway)
        gateways[gateway.api_name] = gateway
    return gateways


def make_routes(gateways):
    R = old.ApiGatewayAdditionalRoute
    specs = [
        dict(
            api_gateway=gateways["chat"],
            name="Typing",
            route_key="typing",
            integration_url="https://www.example.com/ws/typing",
            deployed=True,
            _aws=("rt01abc", "int01abc"),
        ),
        dict(
            api_gateway=gateways["chat"],
            name="Presence",
            route_key="presence",
            integration_url="https://www.example.com/ws/presence",
            deployed=False,
        ),
        # the same route key on another gateway: unique per gateway since the old 0006
        dict(
            api_gateway=gateways["notifications"],
            name="Typing too",
            route_key="typing",
            integration_url="https://www.example.com/notify/typing",
            deployed=True,
            _aws=("rt02def", "int02def"),
        ),
        dict(
            api_gateway=gateways["half built"],
            name="Later",
            route_key="later",
            integration_url="https://staging.example.com/ws/later",
        ),
    ]
    routes = []
    for spec in specs:
        route_id, integration_id = spec.pop("_aws", ("", ""))
        route = R(**spec)
        if HAS_41:
            route.route_id, route.integration_id = route_id, integration_id
        if accepts(R.save, "push_to_aws"):
            route.save(push_to_aws=False)
        else:
            # 4.0's save() calls AWS for an undeployed route of a deployed gateway
            R.objects.bulk_create([route])
            route = R.objects.get(api_gateway=spec["api_gateway"], route_key=spec["route_key"])
        routes.append(route)
    return routes


def make_sessions(gateways, users, session_keys):
    S = old.WebSocketSession
    specs = [
        dict(
            connection_id="Ab1cDEFGhIjKLmn=",
            channel_name="lobby",
            user=users["alice"],
            api_gateway=gateways["chat"],
            request_count=5,
            _login="alice",
        ),
        dict(
            connection_id="Zz9yXWVUtSrQPon=",
            channel_name="staff-room",
            user=users["bob"],
            api_gateway=gateways["chat"],
            connected=False,
            request_count=17,
            _login="bob",
        ),
        dict(connection_id="Qq8wERTYuIoPAsd=", channel_name="", user=None, api_gateway=gateways["notifications"]),
        dict(
            connection_id="Mm7nBVCXzLkJHgf=",
            channel_name="admins",
            user=users["carol"],
            api_gateway=None,
            connected=False,
            _login="carol",
        ),  # gateway deleted (SET_NULL)
    ]
    sessions = []
    for spec in specs:
        login = spec.pop("_login", None)
        session = S(**spec)
        if HAS_41 and login:
            session.session_key_hash = old.hash_session_key(session_keys[login])
            session.auth_hash = old.hash_user_auth(users[login])
        session.save()
        sessions.append(session)
    return sessions


def make_tokens(users, session_keys):
    T = old.WebSocketToken
    fresh = T.generate_token(users["alice"], session_keys["alice"])
    spent = T.generate_token(users["bob"], session_keys["bob"])
    spent.used = True
    spent.save(update_fields=["used"])
    stale = T.generate_token(users["alice"], session_keys["alice"])
    T.objects.filter(pk=stale.pk).update(created_at=PAST)
    return [
        {"token": t.token, "user": u, "raw_session_key": session_keys[u], "used": used, "stale": st}
        for t, u, used, st in (
            (fresh, "alice", False, False),
            (spent, "bob", True, False),
            (stale, "alice", False, True),
        )
    ]


def make_attempts(users):
    C = old.ConnectionRateLimit
    specs = [
        dict(ip_address="203.0.113.5", user=users["alice"], successful=True),
        dict(ip_address="203.0.113.5", user=None, successful=False),
        dict(ip_address="2001:db8::1", user=users["bob"], successful=True),
        dict(ip_address="198.51.100.77", user=None, successful=False, _past=True),
    ]
    rows = []
    for spec in specs:
        past = spec.pop("_past", False)
        row = C.objects.create(**spec)  # not record_attempt(): it purges at random
        if past:
            C.objects.filter(pk=row.pk).update(attempt_time=PAST)
        rows.append(row)
    return rows


def make_channel_permissions(perms):
    P, Rule = old.ChannelPermission, old.ChannelPermissionRule
    specs = [
        ("open", "allow_all", "Anyone may join", []),
        ("staff-room", "staff_only", "", []),
        ("admins", "superuser_only", "Superusers only", []),
        # any one rule, each rule needs all of its permissions
        (
            "reports",
            "permissions",
            "User admins or gateway viewers",
            [["auth.view_user", "auth.change_user"], [f"{APP}.view_apigateway"]],
        ),
        # permissions with no rules admits only superusers; an empty rule is never satisfied
        ("locked", "permissions", "", [[]]),
    ]
    channels = []
    for name, access, description, rules in specs:
        channel = P(channel_name=name, access=access, description=description)
        channel.full_clean()
        channel.save()
        rule_rows = []
        for labels in rules:
            rule = Rule.objects.create(channel_permission=channel)
            rule.permissions.set([perms[label] for label in labels])
            rule_rows.append({"id": rule.pk, "permissions": sorted(labels)})
        channels.append(
            {"id": channel.pk, "channel_name": name, "access": access, "description": description, "rules": rule_rows}
        )
    return channels


def channel_decisions(users):
    """The old package's own answer, per user (and anonymous) and channel, to "may they join?":
    ``ChannelPermission.allows`` as its view's ``can_join_channel`` asks it; ``None`` for a
    channel without a row (the view's ``ALLOW_UNLISTED_CHANNELS`` decides)."""
    from django.contrib.auth.models import AnonymousUser

    names = list(old.ChannelPermission.objects.values_list("channel_name", flat=True)) + ["unlisted-channel"]
    people = {name: get_user_model().objects.get(pk=user.pk) for name, user in users.items()}  # no stale caches
    people["anonymous"] = AnonymousUser()
    decisions = {}
    for who, user in people.items():
        for name in names:
            row = old.ChannelPermission.for_channel(name)
            decisions.setdefault(who, {})[name] = None if row is None else row.allows(user)
    return decisions


def jsonable(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).hex()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def read_tables():
    names = sorted(t for t in connection.introspection.table_names() if t.startswith(APP + "_"))
    tables = {}
    with connection.cursor() as cursor:
        for table in names:
            qn = connection.ops.quote_name(table)
            cursor.execute(f"SELECT * FROM {qn} ORDER BY 1")
            columns = [c[0] for c in cursor.description]
            rows = [dict(zip(columns, map(jsonable, row), strict=False)) for row in cursor.fetchall()]
            tables[table] = {"count": len(rows), "columns": columns, "rows": rows}
    return tables


def read_schema():
    schema = {}
    with connection.cursor() as cursor:
        for table in sorted(t for t in connection.introspection.table_names() if t.startswith(APP + "_")):
            if connection.vendor == "postgresql":
                cursor.execute(
                    "SELECT column_name, data_type, character_maximum_length, is_nullable, column_default "
                    "FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
                    [table],
                )
                columns = [
                    {"name": n, "type": t + (f"({m})" if m else ""), "null": nl == "YES", "default": d}
                    for n, t, m, nl, d in cursor.fetchall()
                ]
                cursor.execute(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s ORDER BY indexname", [table]
                )
                indexes = dict(cursor.fetchall())
            else:
                cursor.execute(f"PRAGMA table_info({connection.ops.quote_name(table)})")
                columns = [
                    {"name": n, "type": t, "null": not notnull, "default": d, "pk": bool(pk)}
                    for _cid, n, t, notnull, d, pk in cursor.fetchall()
                ]
                cursor.execute("SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name=%s", [table])
                indexes = dict(cursor.fetchall())
            constraints = {
                name: {k: v for k, v in c.items() if v and k != "type" or k == "unique"}
                for name, c in connection.introspection.get_constraints(cursor, table).items()
            }
            schema[table] = {"columns": columns, "indexes": indexes, "constraints": constraints}
    return schema


def main(manifest_path):
    users, perms = make_users()
    session_keys = {name: login_session(users[name]) for name in ("alice", "bob", "carol")}
    gateways = make_gateways()
    routes = make_routes(gateways)
    sessions = make_sessions(gateways, users, session_keys)
    tokens = make_tokens(users, session_keys)
    attempts = make_attempts(users)
    channels = make_channel_permissions(perms) if HAS_41 else []

    tables = read_tables()
    empty = [table for table, data in tables.items() if not data["count"]]
    if empty:
        raise SystemExit(f"seed_old: tables left empty: {empty}")

    from importlib.metadata import version

    import django_aws_api_gateway_websockets as pkg_module  # noqa: F401

    manifest = {
        "package_version": version("django-aws-api-gateway-websockets"),
        "django_version": django.get_version(),
        "vendor": connection.vendor,
        "database_name": str(connection.settings_dict["NAME"]),
        "secret_key": settings.SECRET_KEY,
        "websockets_setting": getattr(settings, "WEBSOCKETS", {}),
        "migrations": list(
            MigrationRecorder.Migration.objects.filter(app=APP).order_by("id").values_list("name", flat=True)
        ),
        "users": {
            name: {"id": u.pk, "is_staff": u.is_staff, "is_superuser": u.is_superuser, "password": u.password}
            for name, u in users.items()
        },
        "session_keys": session_keys,
        "gateways": [
            {
                "id": g.pk,
                "api_name": g.api_name,
                "api_id": g.api_id,
                "deployment_id": g.deployment_id,
                "target_base_endpoint": g.target_base_endpoint,
                "domain_name": g.domain_name,
                "api_mapping_id": g.api_mapping_id,
                "api_created": g.api_created,
                "custom_domain_created": g.custom_domain_created,
                "tags": g.tags,
                "provisioning_status": getattr(g, "provisioning_status", None),
                "last_error": getattr(g, "last_error", None),
            }
            for g in gateways.values()
        ],
        "routes": [
            {
                "id": r.pk,
                "api_gateway_id": r.api_gateway_id,
                "name": r.name,
                "route_key": r.route_key,
                "integration_url": r.integration_url,
                "deployed": r.deployed,
                "route_id": getattr(r, "route_id", None),
                "integration_id": getattr(r, "integration_id", None),
            }
            for r in routes
        ],
        "sessions": [
            {
                "id": s.pk,
                "connection_id": s.connection_id,
                "channel_name": s.channel_name,
                "user_id": s.user_id,
                "api_gateway_id": s.api_gateway_id,
                "connected": s.connected,
                "request_count": s.request_count,
                "session_key_hash": getattr(s, "session_key_hash", None),
                "auth_hash": getattr(s, "auth_hash", None),
            }
            for s in sessions
        ],
        "tokens": tokens,
        "attempts": [
            {"id": a.pk, "ip_address": a.ip_address, "user_id": a.user_id, "successful": a.successful} for a in attempts
        ],
        "channel_permissions": channels,
        "channel_decisions": channel_decisions(users) if HAS_41 else {},
        "tables": tables,
        "schema": read_schema(),
    }
    if HAS_41:
        manifest["hashes"] = {
            "session_key_salt": "django_aws_api_gateway_websockets.WebSocketToken.session_key",
            "auth_hash_salt": "django_aws_api_gateway_websockets.WebSocketSession.auth_hash",
            "algorithm": "sha256",
            "gateway_secret_header": getattr(old, "GATEWAY_SECRET_HEADER", None),
            "integration_request_parameters": old.integration_request_parameters(),
        }
    with open(manifest_path, "w", encoding="utf-8") as out:
        json.dump(manifest, out, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
