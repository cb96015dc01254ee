"""Lock levels, weakest first, and what each one blocks (the PostgreSQL 18 manual, "Explicit
Locking"); which statement takes which is in `classification`."""

from __future__ import annotations

from typing import Final

# Lock levels, weakest first, and what each one blocks while it is held.
ACCESS_SHARE = "ACCESS SHARE"
ROW_SHARE = "ROW SHARE"
ROW_EXCLUSIVE = "ROW EXCLUSIVE"
SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
SHARE = "SHARE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
EXCLUSIVE = "EXCLUSIVE"
ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
# In the order of LockStmt.mode (1 = ACCESS SHARE ... 8 = ACCESS EXCLUSIVE).
LEVELS: Final = (
    ACCESS_SHARE,
    ROW_SHARE,
    ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
    SHARE,
    SHARE_ROW_EXCLUSIVE,
    EXCLUSIVE,
    ACCESS_EXCLUSIVE,
)
BLOCKS: Final = {
    ACCESS_EXCLUSIVE: "reads and writes",
    EXCLUSIVE: "writes and locking reads",
    SHARE_ROW_EXCLUSIVE: "writes",
    SHARE: "writes",
    SHARE_UPDATE_EXCLUSIVE: "other schema changes and VACUUM (not reads or writes)",
    ROW_EXCLUSIVE: "nothing but writers of the same rows",
    ROW_SHARE: "nothing but EXCLUSIVE locks",
    ACCESS_SHARE: "nothing but ACCESS EXCLUSIVE locks",
}


def stronger(first: str | None, second: str) -> str:
    return second if first is None or LEVELS.index(second) > LEVELS.index(first) else first


def blocks_traffic(lock: str | None) -> bool:
    """Whether `lock` stops the application's reads or writes while it is held."""
    return lock is not None and LEVELS.index(lock) >= LEVELS.index(SHARE)
