"""Client-made ids: version-7 UUIDs whose time part is when they were made."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime

from afilo_db.data.ids import deterministic_uuid7, uuid7_prefix, uuid7_text


def _milliseconds(value: uuid.UUID) -> int:
    return value.int >> 80


def test_uuid7_text_is_a_version_7_uuid_of_its_time() -> None:
    at = datetime(2026, 12, 2, 6, 30, tzinfo=UTC)
    prefix, rng = uuid7_prefix(at), random.Random(7)
    texts = [uuid7_text(prefix, rng) for _ in range(10_000)]
    assert len(set(texts)) == len(texts)
    for text in texts[:100]:
        value = uuid.UUID(text)
        assert str(value) == text
        assert (value.version, value.variant) == (7, uuid.RFC_4122)
        assert _milliseconds(value) == int(at.timestamp() * 1000)


def test_the_seeds_ids_stay_reproducible() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    first = deterministic_uuid7(at, random.Random(3))
    assert first == deterministic_uuid7(at, random.Random(3))
    assert (first.version, _milliseconds(first)) == (7, int(at.timestamp() * 1000))
