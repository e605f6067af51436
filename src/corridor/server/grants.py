"""Grant rows as the endpoints read them."""

from __future__ import annotations

import json
from typing import Any

from corridor.store.protocols import Row


def decode_grant(row: Row) -> dict[str, Any]:
    grant = dict(row)
    grant["authorization_details"] = (
        json.loads(row["authorization_details"]) if row["authorization_details"] else None
    )
    grant["resources"] = json.loads(row["resources"])
    return grant
