from django.conf import settings

# These tests need a custom AUTH_USER_MODEL: tests/request_path/test_request_sql.py runs them under
# tests.settings_custom_user and tests.settings_child_user. Elsewhere they are not collected
# (rather than listed as skips).
if settings.AUTH_USER_MODEL not in ("custom_user.CustomUser", "child_user.ChildUser"):
    collect_ignore_glob = ["test_*.py"]
