"""Reading an n-d store whose axes play roles (channel, z, y, x, or a fixed index).

OME-Zarr and TIFF (through tifffile's zarr store) both describe their source axes this way;
the readers differ only in how they assign the roles.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import ImageReadError


def read_by_roles(path, array, roles: Sequence, spans: dict, order: str, what: str):
    """Read `array[...]` with source axis i taking `roles[i]`: an int (a fixed index, the axis
    is dropped) or a role letter whose slice is `spans[role]`.

    Returns `(block, present)`: the block with its kept axes transposed into `order`
    (e.g. "czyx"), and the roles present, in that order. Store errors become an
    ImageReadError naming `path` and `what` was read.
    """
    index, kept = [], []
    for role in roles:
        if isinstance(role, int):
            index.append(role)
            continue
        index.append(spans[role])
        kept.append(role)
    try:
        block = np.asarray(array[tuple(index)])
    except ImageReadError:
        raise
    except Exception as exc:
        raise ImageReadError(path, f"reading {what} failed ({type(exc).__name__}: {exc})") from exc
    present = [r for r in order if r in kept]
    return block.transpose([kept.index(r) for r in present]), present
