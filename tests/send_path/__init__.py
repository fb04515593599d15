"""The send path: the fan-out engine, the send backends, history, presence, Celery tasks."""
