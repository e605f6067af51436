"""Persistence behind a small interface; SQL on SQLAlchemy 2 (SQLite by default)."""

from corridor.store.sql import Store

__all__ = ["Store"]
