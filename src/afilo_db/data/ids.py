"""Identifiers made on the client, reproducible from a seed: the catalog import and the seed."""

from __future__ import annotations

import random
import uuid
from datetime import datetime

_RANDOM_B_BITS = 62
_RANDOM_B = (1 << _RANDOM_B_BITS) - 1


def uuid7_prefix(at: datetime) -> int:
    """The bits of a version-7 UUID made at `at` that are not random: its time, version and
    variant."""
    milliseconds = int(at.timestamp() * 1000)
    return (milliseconds & ((1 << 48) - 1)) << 80 | 0x7 << 76 | 0b10 << _RANDOM_B_BITS


def deterministic_uuid7(at: datetime, rng: random.Random) -> uuid.UUID:
    """A version-7 UUID whose time part is `at` and whose random part comes from `rng`."""
    value = uuid7_prefix(at) | rng.getrandbits(12) << 64 | rng.getrandbits(_RANDOM_B_BITS)
    return uuid.UUID(int=value)


def uuid7_text(prefix: int, rng: random.Random) -> str:
    """A version-7 UUID as text, from `uuid7_prefix` and 74 bits of `rng`: for rows written as
    text (COPY), without the cost of a UUID object."""
    bits = rng.getrandbits(12 + _RANDOM_B_BITS)
    digits = f"{prefix | (bits >> _RANDOM_B_BITS) << 64 | bits & _RANDOM_B:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
