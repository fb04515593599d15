"""tests.settings with a custom user model (tests/user_models/, run by
tests/request_path/test_request_sql.py): UUID pk not in the first column, a table name to quote."""

from tests.settings import *  # noqa: F401,F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.user_models.custom_user"]
AUTH_USER_MODEL = "custom_user.CustomUser"
