"""One conversion to plain JSON values, for manifests, encoder cards, run facts and configs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable


def jsonable(value: Any, nonfinite: Callable[[float], Any] | None = None) -> Any:
    """`value` with only JSON types: dict keys as strings, tuples as lists, numpy scalars and
    arrays as Python numbers and lists, paths as strings.

    Non-finite floats (NaN, inf) become `nonfinite(x)` when given (e.g. `str`, to keep a NaN
    nodata value readable), else None, so that every output parses as strict JSON.
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v, nonfinite) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, nonfinite) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy scalars/arrays
        return jsonable(value.tolist(), nonfinite)
    if isinstance(value, float) and not math.isfinite(value):
        return nonfinite(value) if nonfinite else None
    return value
