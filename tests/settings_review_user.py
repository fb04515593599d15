"""tests.settings with a custom user model (tests/review_custom_user/, run by
tests/test_request_sql_review.py): UUID pk not in the first column, a table name to quote."""

from tests.settings import *  # noqa: F401,F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.review_custom_user"]
AUTH_USER_MODEL = "review_custom_user.ReviewUser"
