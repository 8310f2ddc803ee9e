"""Length units: one table of the spellings metadata uses (OME-XML, ImageJ, NGFF, GeoTIFF CRS,
NIfTI) and their size in metres. Pure Python, so that readers and the encoder card share it
without importing numpy or torch."""

from __future__ import annotations

from typing import Any

# Spelling -> short form (keys lower-case); µ as U+00B5 (the micro sign) or U+03BC (Greek mu).
_SPELLINGS = {
    "km": "km", "kilometer": "km", "kilometre": "km", "kilometers": "km", "kilometres": "km",
    "m": "m", "meter": "m", "metre": "m", "meters": "m", "metres": "m",
    "cm": "cm", "centimeter": "cm", "centimetre": "cm", "centimeters": "cm", "centimetres": "cm",
    "mm": "mm", "millimeter": "mm", "millimetre": "mm", "millimeters": "mm", "millimetres": "mm",
    "µm": "µm", "\u03bcm": "µm", "um": "µm", "\\u00b5m": "µm", "micron": "µm", "microns": "µm",
    "micrometer": "µm", "micrometre": "µm", "micrometers": "µm", "micrometres": "µm",
    "nm": "nm", "nanometer": "nm", "nanometre": "nm", "nanometers": "nm", "nanometres": "nm",
    "å": "Å", "\u212b": "Å", "angstrom": "Å", "angstroms": "Å",
    "ft": "ft", "foot": "ft", "feet": "ft", "us-ft": "us-ft", "us survey foot": "us-ft",
    "px": "px", "pixel": "px", "pixels": "px",
}
_METRES = {"km": 1e3, "m": 1.0, "cm": 1e-2, "mm": 1e-3, "µm": 1e-6, "nm": 1e-9, "Å": 1e-10,
           "ft": 0.3048, "us-ft": 1200.0 / 3937.0}


def normalize_unit(unit: Any) -> str | None:
    """Short unit name ("µm", "nm", "mm", "px", ...) for a metadata spelling; None for no unit
    (None or blank); unknown spellings are returned stripped."""
    if unit is None:
        return None
    text = str(unit).strip()
    if not text:
        return None
    return _SPELLINGS.get(text.lower(), text)


def length_in_metres(unit: Any) -> float | None:
    """Metres per `unit` for a length unit; None for anything else (px, deg, unknown, none)."""
    return _METRES.get(normalize_unit(unit) or "px")
