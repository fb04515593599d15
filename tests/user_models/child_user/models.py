"""A multi-table-inheritance child of a concrete user model as AUTH_USER_MODEL
(tests.settings_child_user; the tests are tests/user_models/test_request_path_with_custom_users.py):
the user's columns are in two tables."""

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models


class AccountManager(BaseUserManager):
    def create_user(self, username, password=None, **extra):
        user = self.model(username=username, **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user


class Account(AbstractBaseUser):
    username = models.CharField(max_length=150, unique=True)
    is_active = models.BooleanField(default=True)

    objects = AccountManager()
    USERNAME_FIELD = "username"


class ChildUser(Account):
    badge = models.CharField(max_length=30, default="b")

    objects = AccountManager()
