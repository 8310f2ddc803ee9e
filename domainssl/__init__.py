"""domainssl: self-supervised pretraining on label-scarce scientific imagery.

Kept light on import: torch, readers and format libraries load where they are used.
"""

__version__ = "0.1.0"

from .io import ImageReadError, open_image  # noqa: E402  (numpy only)


def load_encoder(encoder_dir, **kwargs):
    """Load an exported encoder directory (see `domainssl.transfer.load_encoder`)."""
    from .transfer.encoder_io import load_encoder as _load

    return _load(encoder_dir, **kwargs)


__all__ = ["__version__", "ImageReadError", "open_image", "load_encoder"]
