"""Generated two-class stripe images, shared by the transfer and train tests."""

import numpy as np


def striped_images(n_per_class: int = 12, size: int = 16, channels: int = 2, seed: int = 0):
    """Two classes a frozen random CNN separates: horizontal vs vertical stripes, plus noise.

    Returns (images (N, C, size, size) float32, labels (N,) ints).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, labels = [], []
    for label in (0, 1):
        for _ in range(n_per_class):
            phase = rng.uniform(0, 2 * np.pi)
            coord = yy if label == 0 else xx
            base = np.sin(coord * 1.3 + phase)
            img = np.stack([base * (c + 1) for c in range(channels)]) + 0.3 * rng.normal(size=(channels, size, size))
            images.append(100.0 + 20.0 * img)
            labels.append(label)
    return np.asarray(images, np.float32), np.asarray(labels)
