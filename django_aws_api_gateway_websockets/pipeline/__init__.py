"""The request path: ``$connect``, messages and ``$disconnect`` as ordered steps
(docs/architecture.md). views.WebSocketView keeps the public surface (hooks, attributes,
handlers) and delegates here; the SQL is the database layer's (db/)."""
