"""`--debug` (or AFILO_DEBUG=1): show the traceback behind an error. Its own module, so that
both the entry point and the error reporting (`cli.common`) read it and neither imports the
other back."""

from __future__ import annotations

import os

DEBUG_FLAG = "--debug"
DEBUG_VARIABLE = "AFILO_DEBUG"


def debugging() -> bool:
    """`--debug` or AFILO_DEBUG=1: show the traceback behind an error."""
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")
