"""Identifiers made on the client, reproducible from a seed: the catalog import and the seed."""

from __future__ import annotations

import random
import uuid
from datetime import datetime


def deterministic_uuid7(at: datetime, rng: random.Random) -> uuid.UUID:
    """A version-7 UUID whose time part is `at` and whose random part comes from `rng`."""
    milliseconds = int(at.timestamp() * 1000)
    value = (milliseconds & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= rng.getrandbits(12) << 64
    value |= 0b10 << 62
    value |= rng.getrandbits(62)
    return uuid.UUID(int=value)
