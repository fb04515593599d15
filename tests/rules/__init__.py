"""The rules the request path applies: tokens, the rate limiter, sessions ending with the login, channel access."""
