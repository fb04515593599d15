"""User models the request path SQL must handle as the ORM does (tests/request_path/test_request_sql.py
runs tests/user_models/ with each as AUTH_USER_MODEL): an explicit UUID pk that is not
the first column (the first, ``nickname``, may be NULL), a
table name that needs quoting, columns named like the statement's own (``user_id``, ``c2``),
``is_active`` in a column of another name; and a multi-table-inheritance child of auth.User."""

import uuid

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models


class CustomUserManager(BaseUserManager):
    def create_user(self, username, password=None, **extra):
        user = self.model(username=username, **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user


class CustomUser(AbstractBaseUser):
    password = None  # single sign-on only: no password, no last_login (AbstractBaseUser's hidden)
    last_login = None
    nickname = models.CharField(max_length=30, null=True, blank=True)  # noqa: DJ001 - a nullable first column
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, db_column="User Key")
    username = models.CharField(max_length=150, unique=True)
    external = models.CharField(max_length=30, default="ext", db_column="user_id")
    c2 = models.IntegerField(default=42)
    is_active = models.BooleanField(default=True, db_column="Active Flag")
    settings_blob = models.JSONField(default=dict)

    objects = CustomUserManager()
    USERNAME_FIELD = "username"

    class Meta:
        db_table = "Custom Users"
