"""The login drivers' one exception."""

from __future__ import annotations


class LoginError(RuntimeError):
    """The user agent could not run (a missing browser, a failed start, a page that would not
    load); a module that meets it fails with this message."""
