"""Corridor: a FAPI 2.0 Security Profile (Final) stack for authorization servers,
clients and resource servers, with an evidence layer for agent deployments."""

__version__ = "0.1.0"
