"""Authentication levels (``acr``), named and ordered weakest first (design.md 5b: password <
mfa < passkey, configurable). One value object instead of index arithmetic at every use, so an
unknown level is handled the same way everywhere: it reaches nothing and nothing reaches it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class AcrLevels:
    """The levels an AS issues or an RS asks for (OIDC Core 2 ``acr``, RFC 9470)."""

    names: tuple[str, ...]

    def __contains__(self, acr: object) -> bool:
        return acr in self.names

    def rank(self, acr: str | None) -> int:
        """The position of ``acr`` (0 is the weakest); -1 for an unknown or missing level."""
        return self.names.index(acr) if acr in self.names else -1

    def reaches(self, acr: str | None, required: str) -> bool:
        """Is ``acr`` at least ``required``? Never for an unknown level on either side."""
        needed = self.rank(required)
        return needed >= 0 and self.rank(acr) >= needed

    def weakest(self, values: Iterable[str]) -> str | None:
        """The weakest known level among ``values`` (any requested ``acr_values`` satisfies,
        OIDC Core 3.1.2.1), or None when none is known."""
        known = [value for value in values if value in self.names]
        return min(known, key=self.names.index) if known else None
