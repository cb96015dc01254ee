"""Files that must survive a crash whole and that only their owner may read.

A file written in place is empty or half-written if the process or the machine dies while it is
being written; one written to a temporary name beside it, flushed to the disk and renamed over it
is either the old file or the new one (rename is atomic within a file system).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

PRIVATE_MODE = 0o600


def sync_directory(directory: Path) -> None:
    """Make a rename or a new name in `directory` durable."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def private_atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """Write `path` through the handle given: mode 0600 from the start (never readable by others,
    whatever the umask), and in place only once complete and on disk. On an error (a full disk,
    Ctrl-C) the previous file, if any, stays as it was and the temporary one is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(descriptor, PRIVATE_MODE)
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    sync_directory(path.parent)


def write_private(path: Path, text: str) -> None:
    """`text` into `path`, atomically and readable by its owner only."""
    with private_atomic_file(path) as handle:
        handle.write(text.encode())
