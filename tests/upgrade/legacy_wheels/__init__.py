"""Real databases built by the old package's wheels (4.0.0, 4.1.0), for the upgrade tests."""
