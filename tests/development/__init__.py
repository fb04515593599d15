"""What a project's own code and tests use: the testing helpers, the template tag, the view mixins."""
