"""Small synthetic samples for the transform tests (sizes kept tiny: the suite runs on 2 cores)."""

import numpy as np

BANDS13 = [f"B{i:02d}" for i in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)] + ["B8A"]

# Switch off every random intensity op, leaving crops/flips/rot90: for tests that read values.
NO_INTENSITY = {"jitter_p": 0.0, "noise_p": 0.0, "blur_p": 0.0, "channel_dropout_p": 0.0,
                "bias_field_p": 0.0, "solarize_p": 0.0, "affine_p": 0.0, "grayscale_p": 0.0}


def make_sample(channels: int, spatial: tuple, seed: int = 0, scale: float = 1000.0, **extra) -> dict:
    """A sample dict per the data contract: textured float32 image, channel c offset by c*scale."""
    rng = np.random.default_rng(seed)
    img = rng.uniform(0, scale / 4, (channels,) + spatial).astype(np.float32)
    img += (np.arange(channels, dtype=np.float32) * scale).reshape((-1,) + (1,) * len(spatial))
    sample = {"image": img, "channel_names": [f"c{i}" for i in range(channels)],
              "spacing": (1.0,) * len(spatial), "units": ("px",) * len(spatial),
              "source": {"path": "synthetic", "region": None}}
    sample.update(extra)
    return sample


def s2_sample() -> dict:
    """A 13-band Sentinel-2-like patch, reflectance x 10000, 10 m pixels."""
    rng = np.random.default_rng(1)
    img = rng.uniform(200, 4000, (13, 48, 48)).astype(np.float32)
    return {"image": img, "channel_names": list(BANDS13), "spacing": (10.0, 10.0), "units": ("m", "m"),
            "source": {"path": "synthetic", "region": None}, "label": 2}
