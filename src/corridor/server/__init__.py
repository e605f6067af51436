"""The authorization server: ASGI app factory, endpoints as pipelines of named checks."""
