"""How many generated values a property test tries for a rule: bounded in `make test`, many more
in `make bench` (bench/properties.py sets the variable)."""

from __future__ import annotations

import os
from typing import Final

EXAMPLES_VARIABLE: Final = "AFILO_PROPERTY_EXAMPLES"
PROPERTY_EXAMPLES: Final = int(os.environ.get(EXAMPLES_VARIABLE, "50"))
