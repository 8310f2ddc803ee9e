"""PNG / JPEG / BMP reader (Pillow) for small labeled tiles, channel-first `(C, Y, X)`.

These formats have no random access (a JPEG or PNG decodes as a whole), so `read(region)`
decodes the file and crops; they are used for small images such as 64×64 scene tiles. Nothing
is cached between reads: memory stays at one decoded image.
"""

from __future__ import annotations

import os

import numpy as np

from .errors import ImageReadError
from .image import LazyImage

# Pillow mode -> (mode to decode into, numpy dtype, channel names). Palette images decode to
# their colours; 1-bit images to 0/255 grey so every channel is a number a model can use.
_MODES = {
    "1": ("L", np.uint8, ["L"]),
    "L": ("L", np.uint8, ["L"]),
    "LA": ("LA", np.uint8, ["L", "A"]),
    "RGB": ("RGB", np.uint8, ["R", "G", "B"]),
    "RGBA": ("RGBA", np.uint8, ["R", "G", "B", "A"]),
    "CMYK": ("CMYK", np.uint8, ["C", "M", "Y", "K"]),
    "YCbCr": ("YCbCr", np.uint8, ["Y", "Cb", "Cr"]),
    "P": ("RGB", np.uint8, ["R", "G", "B"]),
    "PA": ("RGBA", np.uint8, ["R", "G", "B", "A"]),
    "I;16": ("I;16", np.uint16, ["L"]),
    "I;16L": ("I;16", np.uint16, ["L"]),
    "I;16B": ("I;16", np.uint16, ["L"]),
    "I": ("I", np.int32, ["L"]),
    "F": ("F", np.float32, ["L"]),
}


_VERIFY_MAX_BYTES = 64 * 2**20  # PNG chunk CRC check reads the file; skip it for huge files


def _check_complete(path: str, fmt: str | None) -> None:
    """Header-cost checks that a PNG/JPEG is not cut off, so the archive scan rejects it.

    JPEG: the end-of-image marker must be among the last 4 KiB (encoders may pad after it).
    PNG: Pillow's `verify` walks the chunks and their CRCs without decoding pixels.
    """
    from PIL import Image

    if fmt == "JPEG":
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            fh.seek(max(0, size - 4096))
            tail = fh.read()
        if b"\xff\xd9" not in tail:
            raise ImageReadError(path, "truncated JPEG: no end-of-image marker; re-copy the file")
    elif fmt == "PNG" and os.path.getsize(path) <= _VERIFY_MAX_BYTES:
        try:
            with Image.open(path) as im:
                im.verify()
        except Exception as exc:  # Pillow raises SyntaxError/OSError/struct.error on bad chunks
            raise ImageReadError(path, f"truncated or corrupt PNG ({type(exc).__name__}: {exc})") from exc


class PlainImage(LazyImage):
    """A PNG/JPEG/BMP file as a lazy `(C, Y, X)` image with spacing 1 "px"."""

    format = "plain"

    def __init__(self, path: str):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                mode, size, fmt = im.mode, im.size, im.format
                transparent = "transparency" in im.info
                # EXIF orientation matters for camera JPEGs; for PNG getexif would walk all chunks
                exif_orientation = im.getexif().get(0x0112) if fmt == "JPEG" else None
        except (UnidentifiedImageError, OSError) as exc:
            raise ImageReadError(path, f"not a readable PNG/JPEG/BMP, or truncated "
                                 f"({type(exc).__name__}: {exc})") from exc
        _check_complete(path, fmt)
        if mode not in _MODES:
            raise ImageReadError(path, f"Pillow mode {mode!r} is not supported; convert the image to "
                                 f"one of {sorted(_MODES)}")
        target, dtype, names = _MODES[mode]
        if mode == "P" and transparent:
            target, names = "RGBA", ["R", "G", "B", "A"]
        self._decode_mode = target
        width, height = size
        meta = {"pil_mode": mode, "file_format": fmt}
        if exif_orientation not in (None, 1):
            # kept as stored: rotating would change the pixel grid without the user asking
            meta["exif_orientation"] = int(exif_orientation)
        super().__init__(path, (len(names), height, width), "CYX", (1.0, 1.0), ("px", "px"),
                         names, dtype, meta)

    def _read(self, bounds) -> np.ndarray:
        from PIL import Image

        (c0, c1), (y0, y1), (x0, x1) = bounds
        try:
            with Image.open(self.path) as im:
                if im.mode != self._decode_mode:
                    im = im.convert(self._decode_mode)
                im = im.crop((x0, y0, x1, y1))
                arr = np.asarray(im)
        except (OSError, ValueError) as exc:
            raise ImageReadError(self.path, f"decoding failed, the file may be truncated or corrupt "
                                 f"({type(exc).__name__}: {exc})") from exc
        if arr.ndim == 2:
            arr = arr[None]
        else:
            arr = arr.transpose(2, 0, 1)
        return arr[c0:c1].astype(self.dtype, copy=False)


def open_plain(path, **kw) -> PlainImage:
    """Open a PNG/JPEG/BMP lazily (header only) as `(C, Y, X)`.

    Channel names come from the Pillow mode ("R", "G", "B" for colour, "L" for grey, "A" for
    alpha); palette images read as RGB(A); spacing is 1 "px" per axis (these formats carry no
    physical size).

    Raises:
        ImageReadError: missing, unidentifiable, truncated or unsupported-mode file.
    """
    if kw:
        raise TypeError(f"open_plain got unexpected options {sorted(kw)}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ImageReadError(path, "no such file")
    return PlainImage(path)
