"""tests.settings with a multi-table-inheritance child of auth.User as the user model
(tests/review_custom_user/, run by tests/test_request_sql_review.py)."""

from tests.settings import *  # noqa: F401,F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.review_child_user"]
AUTH_USER_MODEL = "review_child_user.ChildUser"
