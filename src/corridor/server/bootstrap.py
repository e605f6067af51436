"""Dev mode: on first start, a demo user, a demo client (its private key written to the
data directory) and the demo resource server, so a new user can try a flow at once."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from corridor.core.jose import SigningKey
from corridor.core.private_files import tighten, write_private
from corridor.core.randomness import new_id
from corridor.server.clients import build_client_metadata
from corridor.server.passwords import hash_password
from corridor.server.settings import Settings
from corridor.store.sql import Store

DEMO_CLIENT_ID = "demo-client"
DEMO_USER = "demo"
DEMO_REDIRECT_URI = "http://127.0.0.1:8765/callback"
DEMO_RESOURCE = "https://127.0.0.1:8444"


@dataclass(frozen=True)
class DemoFiles:
    client_key: Path
    user_password: Path


def demo_files(settings: Settings) -> DemoFiles:
    return DemoFiles(settings.data_dir / "demo-client-key.json", settings.data_dir / "demo-user-password.txt")


def ensure_demo(settings: Settings, store: Store, now: float) -> DemoFiles:
    files = demo_files(settings)
    if store.clients.resource_servers() == []:
        store.clients.add_resource_server(
            DEMO_RESOURCE, "Demo payments API", ["accounts", "payments"], None, now
        )
    if store.users.by_name(DEMO_USER) is None:
        password = secrets.token_urlsafe(12)
        store.users.add(new_id(), DEMO_USER, hash_password(password), now)
        write_private(files.user_password, (password + "\n").encode())
    if store.clients.get(DEMO_CLIENT_ID) is None:
        key = SigningKey.generate("ES256")
        meta = build_client_metadata(
            redirect_uris=[DEMO_REDIRECT_URI],
            jwks={"keys": [key.public_jwk]},
            scope="openid profile offline_access accounts payments",
        )
        store.clients.add(DEMO_CLIENT_ID, "Corridor demo client", meta, now)
        write_private(files.client_key, (json.dumps(key.private_jwk(), indent=2) + "\n").encode())
    tighten(files.user_password)
    tighten(files.client_key)
    return files
