"""Secrets at rest readable by the service only (design.md 5c, issue 13 F3).

The data directory holds the SQLite database (signing keys, TOTP secrets, the admin cookie
secret), the dev CA's and the server's private keys and the demo credentials. Directories are
created 0700 and files 0600 whatever the umask; ones that already exist with group or other
permission bits are tightened, each with a warning line naming it.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("corridor.files")

PRIVATE_DIRECTORY = 0o700
PRIVATE_FILE = 0o600


@contextmanager
def private_umask() -> Iterator[None]:
    """Whatever this process creates meanwhile is the owner's only (the umask is per process)."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def tighten(path: Path, wanted: int = PRIVATE_FILE) -> bool:
    """design.md 5c: an existing file or directory open to group or others becomes ``wanted``,
    with a warning; True when it was changed. A missing path is left alone."""
    try:
        current = stat.S_IMODE(path.lstat().st_mode)
    except FileNotFoundError:
        return False
    if path.is_symlink() or not current & 0o077:
        return False
    path.chmod(wanted)
    log.warning("%s was readable by others (mode %03o); tightened to %03o", path, current, wanted)
    return True


def private_directory(path: Path) -> None:
    """Create ``path`` (and missing parents) 0700, or tighten an existing one."""
    if path.is_dir():
        tighten(path, PRIVATE_DIRECTORY)
        return
    with private_umask():
        path.mkdir(mode=PRIVATE_DIRECTORY, parents=True, exist_ok=True)


def write_private(path: Path, data: bytes) -> None:
    """Write a secret into a file that is 0600 from its first byte (no chmod after the write)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(file.fileno(), PRIVATE_FILE)
        file.write(data)


def private_sqlite_file(database: Path) -> None:
    """design.md 5c: a SQLite database 0600 before SQLite opens it (its -wal and -shm files take
    the database file's mode), and loose existing ones tightened. The directory must exist."""
    if not database.exists() and database.parent.is_dir():
        fd = os.open(database, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE)
        try:
            os.fchmod(fd, PRIVATE_FILE)
        finally:
            os.close(fd)
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm"), Path(f"{database}-journal")):
        tighten(path)
