"""Process-wide objects made once, whichever threads ask first."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable
from typing import Generic, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class once_per_arguments(Generic[P, R]):  # noqa: N801 (used as a decorator, like functools.cache)
    """`functools.cache` for objects the process must hold one of (an engine and its pool, a
    loaded model): the function runs once per arguments even when threads ask at the same time.
    `functools.cache` alone lets each of them run it and keeps one result: the others' engines
    and models stay open, unused, until collected."""

    def __init__(self, function: Callable[P, R]) -> None:
        self._made: dict[Hashable, R] = {}
        self._function = function
        # Reentrant: making one object may ask for another (an embedder wrapping the default one).
        self._lock = threading.RLock()
        functools.update_wrapper(self, function)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        key = (args, tuple(sorted(kwargs.items())))
        try:
            return self._made[key]  # made already: no lock (a dict read is atomic)
        except KeyError:
            pass
        with self._lock:
            if key not in self._made:
                self._made[key] = self._function(*args, **kwargs)
            return self._made[key]

    def made(self) -> list[R]:
        """What it has made so far."""
        with self._lock:
            return list(self._made.values())

    def cache_clear(self) -> None:
        """Forget what it made (the caller closes it first, if it must be closed)."""
        with self._lock:
            self._made.clear()
