"""collate_patches hands a batch that is the rows of one float32 array on without a copy, and
copies anything else; the values are the same either way."""

import numpy as np
import pytest
import torch

from domainssl.transforms import collate_patches


def _base() -> np.ndarray:
    base = np.empty((3, 2, 4, 5), dtype=np.float32)  # owns its memory, as the batch read's array
    base[...] = np.arange(base.size).reshape(base.shape)
    return base


def _samples(images):
    return [{"image": im, "spacing": (1.0, 2.0), "index": i} for i, im in enumerate(images)]


def test_rows_of_one_array_are_handed_on():
    base = _base()
    batch = collate_patches(_samples([base[0], base[1], base[2]]))
    assert batch["image"].dtype == torch.float32 and batch["image"].shape == (3, 2, 4, 5)
    assert batch["image"].data_ptr() == base.ctypes.data  # no copy
    np.testing.assert_array_equal(batch["image"].numpy(), base)
    assert batch["index"].tolist() == [0, 1, 2]
    assert batch["spacing"].tolist() == [[1.0, 2.0]] * 3


@pytest.mark.parametrize("pick", [
    lambda b: [b[1], b[0], b[2]],                        # reordered
    lambda b: [b[0], b[1]],                              # not every row
    lambda b: [b[0], b[1], b[2].copy()],                 # one patch elsewhere
    lambda b: [b[0][:, ::-1], b[1], b[2]],               # other strides
    lambda b: [b[i].astype(np.float64) for i in range(3)],  # another dtype: cast
    lambda b: [torch.from_numpy(b[i]) for i in range(3)],   # tensors
])
def test_anything_else_is_copied_with_the_same_values(pick):
    base = _base()
    images = pick(base)
    batch = collate_patches(_samples(images))
    assert batch["image"].dtype == torch.float32
    assert batch["image"].data_ptr() != base.ctypes.data
    want = np.stack([np.asarray(im, dtype=np.float32) for im in images])
    np.testing.assert_array_equal(batch["image"].numpy(), want)


def test_float64_rows_are_cast_not_shared():
    base = _base().astype(np.float64)
    batch = collate_patches(_samples([base[0], base[1], base[2]]))
    assert batch["image"].dtype == torch.float32
    np.testing.assert_array_equal(batch["image"].numpy(), base.astype(np.float32))
