from .fixtures import old_database_40, old_database_41  # noqa: F401


def pytest_configure(config):
    config.addinivalue_line("markers", "legacy_wheels: builds a real database with the old package's wheel (pip, once)")
