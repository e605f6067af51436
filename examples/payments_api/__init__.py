"""A demo payments API protected by ``corridor.resource`` (FastAPI), for a local Corridor AS.

Start it with ``corridor demo-api`` (``make run`` starts it beside ``corridor serve``);
``app.py`` has the routes and their checks, ``server.py`` the TLS, trust and audit wiring.
"""

from .app import DEFAULT_STEP_UP_THRESHOLD, PaymentRequest, create_app, grant_key
from .ledger import Ledger
from .server import DemoConfig, run

__all__ = [
    "DEFAULT_STEP_UP_THRESHOLD",
    "DemoConfig",
    "Ledger",
    "PaymentRequest",
    "create_app",
    "grant_key",
    "run",
]
