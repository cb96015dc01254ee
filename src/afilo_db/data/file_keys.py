"""The keys a catalog file has held so far (handles, skus, Stripe ids), to find a line that
repeats an earlier one, in the importing process: 16 bytes a key, searched with numpy.

A key is known by a 96-bit BLAKE2b digest of its kind and value. Two different keys share one
with a probability of about 4e-16 for a file of a million products (eight million keys), far
below that of a memory error: the digest stands for the value. Digests are kept in sorted runs
of at most LEVEL_KEYS, merged as they fill, so that a batch costs a few binary searches however
long the file is, and no merge copies more than one run.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

DIGEST_BYTES = 12
LEVEL_KEYS = 1 << 20

_HIGH = np.dtype(">u8")
_LOW = np.dtype(">u4")
_DIGEST = np.dtype([("high", _HIGH), ("low", _LOW)])


def key_digest(kind: str, value: str) -> bytes:
    """The digest that stands for a key (kinds hold no ':')."""
    return hashlib.blake2b(f"{kind}:{value}".encode(), digest_size=DIGEST_BYTES).digest()


class _Level:
    """Digests sorted by (high, low), each with the line that first held it."""

    def __init__(
        self,
        high: npt.NDArray[np.uint64],
        low: npt.NDArray[np.uint32],
        lines: npt.NDArray[np.uint32],
    ) -> None:
        self.high, self.low, self.lines = high, low, lines

    def __len__(self) -> int:
        return len(self.high)

    def first_lines(
        self, high: npt.NDArray[np.uint64], low: npt.NDArray[np.uint32]
    ) -> dict[int, int]:
        """For each digest (high, low) held here: its index in the arguments -> its line."""
        found: dict[int, int] = {}
        starts = np.searchsorted(self.high, high)
        inside = starts < len(self.high)
        candidates = np.nonzero(inside)[0]
        hits = candidates[self.high[starts[candidates]] == high[candidates]]
        for index in hits.tolist():
            # Digests that share their high 64 bits sit side by side: walk the run.
            position = int(starts[index])
            while position < len(self.high) and self.high[position] == high[index]:
                if self.low[position] == low[index]:
                    found[index] = int(self.lines[position])
                    break
                position += 1
        return found

    @staticmethod
    def merged(levels: list[_Level]) -> _Level:
        high = np.concatenate([level.high for level in levels])
        low = np.concatenate([level.low for level in levels])
        lines = np.concatenate([level.lines for level in levels])
        order = np.lexsort((low, high))
        return _Level(high[order], low[order], lines[order])


class FileKeys:
    """Every key of a file so far, and the line that first held it."""

    def __init__(self) -> None:
        self._levels: list[_Level] = []

    def __len__(self) -> int:
        return sum(len(level) for level in self._levels)

    def add_batch(self, digests: bytes, lines: bytes) -> dict[int, int]:
        """Take a batch's keys (`key_digest`s, and their lines as native uint32s, in the file's
        order). Returns, for each key an earlier key of the file or of the batch holds, its
        index in the batch -> the line that first held it; the other keys join the file's."""
        batch = np.frombuffer(digests, dtype=_DIGEST)
        batch_lines = np.frombuffer(lines, dtype=np.uint32)
        high = batch["high"].astype(np.uint64)
        low = batch["low"].astype(np.uint32)
        count = len(batch)
        # The batch's keys by digest, then by their order in the batch: the first of each run of
        # equal digests is the batch's first holder of that key.
        order = np.lexsort((np.arange(count), low, high))
        sorted_high, sorted_low = high[order], low[order]
        repeats_previous = np.zeros(count, dtype=bool)
        repeats_previous[1:] = (sorted_high[1:] == sorted_high[:-1]) & (
            sorted_low[1:] == sorted_low[:-1]
        )
        firsts = order[~repeats_previous]
        known: dict[int, int] = {}
        for level in self._levels:
            for index, line in level.first_lines(high[firsts], low[firsts]).items():
                known.setdefault(int(firsts[index]), line)
        repeated = dict(known)
        run_first = order[np.maximum.accumulate(np.where(repeats_previous, 0, np.arange(count)))]
        for position in np.nonzero(repeats_previous)[0].tolist():
            first = int(run_first[position])
            repeated[int(order[position])] = known.get(first, int(batch_lines[first]))
        new = np.array([index for index in firsts.tolist() if index not in known], dtype=np.intp)
        if len(new):
            # `firsts` is in digest order, so `new` is too.
            self._levels.append(_Level(high[new], low[new], batch_lines[new].copy()))
            self._merge()
        return repeated

    def _merge(self) -> None:
        """Merge the newest runs while the newest is no smaller than the one before it and the
        two fit in one run: a run is copied O(log n) times at most."""
        while (
            len(self._levels) >= 2
            and len(self._levels[-1]) >= len(self._levels[-2])
            and len(self._levels[-1]) + len(self._levels[-2]) <= LEVEL_KEYS
        ):
            newest = self._levels.pop()
            self._levels[-1] = _Level.merged([self._levels[-1], newest])
