"""tests.settings with a multi-table-inheritance child of auth.User as the user model
(tests/user_models/, run by tests/request_path/test_request_sql.py)."""

from tests.settings import *  # noqa: F401,F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.user_models.child_user"]
AUTH_USER_MODEL = "child_user.ChildUser"
