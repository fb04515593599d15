"""The request path: $connect, messages, $disconnect, the token view; their SQL, budgets, refusals."""
