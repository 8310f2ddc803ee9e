"""Lazy re-exports for subpackages, so `import domainssl` does not import torch and friends."""

from __future__ import annotations

import importlib
from typing import Callable


def lazy_getattr(package: str, exports: dict[str, str]) -> Callable[[str], object]:
    """A module-level `__getattr__` that imports `package.<exports[name]>` on first use of `name`."""

    def __getattr__(name: str):
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
