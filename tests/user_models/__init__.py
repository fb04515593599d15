"""The request path under custom AUTH_USER_MODELs (apps custom_user and child_user, run in a subprocess)."""
