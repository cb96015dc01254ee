"""The import's registry of a file's keys, against a dictionary of every key it was given."""

from __future__ import annotations

import random
from array import array

import pytest

from afilo_db.data import file_keys
from afilo_db.data.file_keys import FileKeys, key_digest


def _batch(keys: list[tuple[str, int]]) -> tuple[bytes, bytes]:
    digests = b"".join(key_digest("sku", value) for value, _line in keys)
    return digests, array("I", [line for _value, line in keys]).tobytes()


def test_repeats_within_and_across_batches_name_the_first_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(file_keys, "LEVEL_KEYS", 64)  # many runs, and merges between them
    rng = random.Random(16)
    registry, first_line_of = FileKeys(), dict[str, int]()
    line = 0
    for _ in range(60):
        batch = []
        for _ in range(rng.randint(1, 40)):
            line += 1
            batch += [(f"SKU-{rng.randrange(900)}", line) for _ in range(rng.randint(1, 3))]
        expected = {}
        for index, (value, key_line) in enumerate(batch):
            if value in first_line_of:
                expected[index] = first_line_of[value]
            else:
                first_line_of[value] = key_line
        assert registry.add_batch(*_batch(batch)) == expected
    assert len(registry) == len(first_line_of)


def test_digests_that_share_their_high_bits_are_told_apart() -> None:
    """Keys whose digests differ only in their low 32 bits (made here, as a real collision of
    64 bits cannot be) are different keys; one of them repeated is still found."""
    high = bytes(8)
    digests = [high + index.to_bytes(4, "big") for index in (5, 3, 9, 3)]
    registry = FileKeys()
    first = registry.add_batch(b"".join(digests[:2]), array("I", [1, 2]).tobytes())
    assert first == {}
    later = registry.add_batch(b"".join(digests[2:]), array("I", [3, 4]).tobytes())
    assert later == {1: 2}
