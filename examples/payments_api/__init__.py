"""A demo payments API protected by ``corridor.resource`` (FastAPI), for a local Corridor AS.

Start it with ``corridor demo-api`` (``make run`` starts it beside ``corridor serve``);
``app.py`` has the routes and their checks, ``server.py`` the TLS, trust and audit wiring.
"""

from .app import DEFAULT_STEP_UP_THRESHOLD, PaymentRequest, Payments, create_app, grant_key
from .server import DemoConfig, run

__all__ = [
    "DEFAULT_STEP_UP_THRESHOLD",
    "DemoConfig",
    "PaymentRequest",
    "Payments",
    "create_app",
    "grant_key",
    "run",
]
