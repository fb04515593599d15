"""The old package's real wheels build the databases the upgrade tests start from.

Runs on the backend of the test run (TEST_DB=postgres for PostgreSQL). Reads the old tables
with raw SQL only: this package's models describe a different schema.
"""

import json

import pytest
from django.db import connections

from . import builder
from .fixtures import legacy_wheels

pytestmark = [legacy_wheels, pytest.mark.django_db(transaction=True)]

APP = builder.APP_LABEL
OLD_40_MIGRATIONS = [
    "0001_initial",
    "0002_rename_author_websocketsession_user",
    "0003_auto_20220706_1018",
    "0004_auto_20221208_1227",
    "0005_apigatewayadditionalroute_deployed",
    "0006_auto_20221215_0847",
    "0007_connectionratelimit_websockettoken",
    "0008_remove_websockettoken_websocket_t_created_c55db3_idx_and_more",
    "0009_alter_connectionratelimit_table_and_more",
]
OLD_41_MIGRATIONS = OLD_40_MIGRATIONS + [
    "0010_hash_websockettoken_session_key",
    "0011_channelpermission_channelpermissionrule",
    "0012_apigateway_provisioning_status",
    "0013_apigatewayadditionalroute_aws_ids",
    "0014_websocketsession_auth_hash_and_more",
    "0015_alter_apigateway_provisioning_status",
]
TABLES_40 = {
    f"{APP}_{name}"
    for name in ("apigateway", "apigatewayadditionalroute", "websocketsession", "websockettoken", "connectionratelimit")
}
TABLES_41 = TABLES_40 | {f"{APP}_channelpermission", f"{APP}_channelpermissionrule"}  # + the M2M table


def fetch(alias, sql, params=()):
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        columns = [c[0] for c in cursor.description]
        return [dict(zip(columns, row, strict=False)) for row in cursor.fetchall()]


def assert_manifest_matches(old):
    alias, manifest = old.alias, old.manifest
    connection = connections[alias]
    assert manifest["vendor"] == connection.vendor
    existing = {t for t in connection.introspection.table_names() if t.startswith(APP + "_")}
    assert existing == set(manifest["tables"])
    for table, expected in manifest["tables"].items():
        assert expected["count"] > 0, f"{table} was not seeded"
        rows = fetch(alias, f"SELECT * FROM {connection.ops.quote_name(table)} ORDER BY 1")
        assert len(rows) == expected["count"], table
        # every row, every column: same primary keys and the same text values
        assert [r["id"] for r in rows] == [r["id"] for r in expected["rows"]], table
        for row, seeded in zip(rows, expected["rows"], strict=False):
            for column in (
                "api_name",
                "route_key",
                "connection_id",
                "channel_name",
                "token",
                "session_key",
                "ip_address",
                "access",
                "provisioning_status",
                "last_error",
                "route_id",
                "integration_id",
                "session_key_hash",
                "auth_hash",
                "user_id",
                "api_gateway_id",
            ):
                if column in seeded:
                    assert row[column] == seeded[column], (table, column)
    applied = [r["name"] for r in fetch(alias, "SELECT name FROM django_migrations WHERE app = %s ORDER BY id", [APP])]
    assert applied == manifest["migrations"]
    users = {r["username"]: r["id"] for r in fetch(alias, "SELECT id, username FROM auth_user")}
    assert users == {name: u["id"] for name, u in manifest["users"].items()}
    return existing


def test_old_41_database_is_the_real_4_1_schema_with_every_table_seeded(old_database_41):
    manifest = old_database_41.manifest
    assert manifest["package_version"] == "4.1.0"
    assert manifest["migrations"] == OLD_41_MIGRATIONS
    tables = assert_manifest_matches(old_database_41)
    assert tables >= TABLES_41 and len(tables) == len(TABLES_41) + 1  # the rule<->permission M2M table

    alias = old_database_41.alias
    gateways = {r["api_name"]: r for r in fetch(alias, f"SELECT * FROM {APP}_apigateway")}
    assert gateways["half built"]["provisioning_status"] == "creating"
    assert gateways["half built"]["last_error"].startswith("ConflictException")
    assert gateways["notifications"]["target_base_endpoint"].endswith("/notify/")  # the old save() added it
    routes = fetch(alias, f"SELECT route_key, route_id, integration_id FROM {APP}_apigatewayadditionalroute")
    assert ("typing", "rt01abc", "int01abc") in {tuple(r.values()) for r in routes}

    # 4.1.0 stores keyed hashes of the session key: salted_hmac(<salt>, key, sha256) with SECRET_KEY
    from django.test import override_settings
    from django.utils.crypto import salted_hmac

    hashes = manifest["hashes"]
    with override_settings(SECRET_KEY=manifest["secret_key"]):
        alice_hash = salted_hmac(
            hashes["session_key_salt"], manifest["session_keys"]["alice"], algorithm="sha256"
        ).hexdigest()
    tokens = fetch(alias, f"SELECT token, session_key FROM {APP}_websockettoken")
    assert {t["session_key"] for t in tokens if t["token"] == manifest["tokens"][0]["token"]} == {alice_hash}
    sessions = {r["connection_id"]: r for r in fetch(alias, f"SELECT * FROM {APP}_websocketsession")}
    assert sessions["Ab1cDEFGhIjKLmn="]["session_key_hash"] == alice_hash
    assert len(sessions["Ab1cDEFGhIjKLmn="]["auth_hash"]) == 64
    assert sessions["Qq8wERTYuIoPAsd="]["session_key_hash"] == ""  # anonymous: empty, not NULL

    access = {r["channel_name"]: r["access"] for r in fetch(alias, f"SELECT * FROM {APP}_channelpermission")}
    assert access == {
        "open": "allow_all",
        "staff-room": "staff_only",
        "admins": "superuser_only",
        "reports": "permissions",
        "locked": "permissions",
    }
    m2m = next(t for t in tables if t not in TABLES_41)
    pairs = fetch(
        alias,
        f"SELECT cp.channel_name, ct.app_label, p.codename, m.channelpermissionrule_id FROM {m2m} m "
        f"JOIN {APP}_channelpermissionrule r ON r.id = m.channelpermissionrule_id "
        f"JOIN {APP}_channelpermission cp ON cp.id = r.channel_permission_id "
        "JOIN auth_permission p ON p.id = m.permission_id JOIN django_content_type ct ON ct.id = p.content_type_id",
    )
    rules = {}
    for row in pairs:
        rules.setdefault(row["channelpermissionrule_id"], set()).add(f"{row['app_label']}.{row['codename']}")
    assert sorted(map(sorted, rules.values())) == [["auth.change_user", "auth.view_user"], [f"{APP}.view_apigateway"]]
    assert manifest["websockets_setting"]["gateway_secret"] == builder.GATEWAY_SECRETS_41
    assert hashes["gateway_secret_header"] == "X-Ws-Gateway-Secret"


def test_old_40_database_is_the_real_4_0_schema_with_every_table_seeded(old_database_40):
    manifest = old_database_40.manifest
    assert manifest["package_version"] == "4.0.0"
    assert manifest["migrations"] == OLD_40_MIGRATIONS
    assert assert_manifest_matches(old_database_40) == TABLES_40
    tokens = fetch(old_database_40.alias, f"SELECT session_key FROM {APP}_websockettoken")
    assert {t["session_key"] for t in tokens} <= set(manifest["session_keys"].values())  # 4.0: raw keys
    json.dumps(manifest)  # a plain JSON document


def test_old_database_is_a_whole_old_project_under_its_own_alias(old_database_41):
    assert old_database_41.alias in connections.settings
    assert fetch(old_database_41.alias, "SELECT COUNT(*) AS n FROM django_session")[0]["n"] == 3


def test_unavailable_index_is_a_clear_error_not_a_crash(tmp_path, monkeypatch):
    monkeypatch.setenv("DAWSGW_LEGACY_CACHE", str(tmp_path))
    monkeypatch.setenv("DAWSGW_LEGACY_OFFLINE", "1")
    with pytest.raises(builder.LegacyEnvironmentUnavailable, match="no cached virtualenv"):
        builder.ensure_venv("4.1.0")


def test_old_interpreter_gets_none_of_our_environment(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/work/main")
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.settings")
    monkeypatch.setenv("VIRTUAL_ENV", "/somewhere")
    env = builder.clean_env({"DJANGO_SETTINGS_MODULE": "old_settings"})
    assert "PYTHONPATH" not in env and "VIRTUAL_ENV" not in env
    assert env["DJANGO_SETTINGS_MODULE"] == "old_settings"
