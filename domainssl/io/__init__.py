"""Lazy readers for scientific image formats and the archive scan.

`open_image(path)` reads headers only; `image.read(region)` reads the bytes a region needs.
"""

from .errors import ImageReadError
from .image import LazyImage
from .open import detect_format, open_image

__all__ = ["ImageReadError", "LazyImage", "detect_format", "open_image"]
