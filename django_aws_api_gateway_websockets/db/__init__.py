"""The database layer: every hand-written SQL statement of the package, in one place
(docs/architecture.md, The database layer).

- ``features``: what the database can do, from Django's ``connection.features`` (``RETURNING``
  on inserts, ``ON CONFLICT (target) DO UPDATE``) and, where Django has no flag, its vendor;
- ``statements``: one statement cache per database alias, shared by every module here;
- ``rows``: model instances from rows of hand-written SQL, columns read by name;
- ``sessions``: the connection row's read and writes on the message and ``$disconnect`` paths
  (the ORM: one statement each already);
- ``tokens``, ``counters``, ``sequences``: the statements that save a round trip each (the
  token spent with its user, the rate-limit counters' and the stream sequence's upserts);
- ``connect``: ``$connect`` in one statement (PostgreSQL), built from the same statements.

Hand-written SQL is kept only where it removes statements; the rest is the ORM.
"""
