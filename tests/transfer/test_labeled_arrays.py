"""`from_arrays`: which axes are channels follows one documented rule; ambiguous arrays are refused.

`from_arrays(np.random.rand(6, 28, 28), [0, 1] * 3)` raised although the docstring promised
(N, *S) for one channel, and (6, 16, 28, 28) was silently taken as 16 channels of 2D images.
"""

import numpy as np
import pytest

from domainssl.transfer.labeled import LabeledDataError, from_arrays

LABELS = [0, 1] * 3


def test_n_y_x_is_one_channel_2d():
    images = np.random.default_rng(0).random((6, 28, 28))
    ds = from_arrays(images, LABELS)
    assert (ds.spatial_dims, ds.channel_names) == (2, ["c0"])
    np.testing.assert_array_equal(ds.get_image(3), images[3][None].astype(np.float32))


def test_four_dims_without_a_rule_are_refused_saying_what_to_pass():
    with pytest.raises(LabeledDataError) as err:
        from_arrays(np.zeros((6, 16, 28, 28)), LABELS)
    assert str(err.value) == (
        "arrays: images of shape (6, 16, 28, 28) are ambiguous: 16 channels of 28x28 2D images (N, C, Y, X), "
        "or one-channel 16x28x28 volumes (N, Z, Y, X). Pass spatial_dims=2 (or channel_names with 16 names) "
        "for the first, spatial_dims=3 (or images[:, None]) for the second")


@pytest.mark.parametrize("kwargs, dims, channels, image_shape", [
    ({"spatial_dims": 3}, 3, 1, (1, 16, 28, 28)),
    ({"spatial_dims": 2}, 2, 16, (16, 28, 28)),
    ({"channel_names": [f"b{i}" for i in range(16)]}, 2, 16, (16, 28, 28)),
    ({"channel_names": ["ct"]}, 3, 1, (1, 16, 28, 28)),
    ({"spatial_dims": 3, "channel_names": ["ct"]}, 3, 1, (1, 16, 28, 28)),
])
def test_spatial_dims_or_channel_names_decide_four_dims(kwargs, dims, channels, image_shape):
    images = np.arange(6 * 16 * 28 * 28, dtype=np.float32).reshape(6, 16, 28, 28)
    ds = from_arrays(images, LABELS, **kwargs)
    assert ds.spatial_dims == dims and len(ds.channel_names) == channels
    assert ds.get_image(2).shape == image_shape
    np.testing.assert_array_equal(ds.get_image(2).reshape(-1), images[2].reshape(-1))


def test_a_second_axis_of_one_is_one_channel_and_five_dims_are_volumes():
    assert from_arrays(np.zeros((6, 1, 8, 8)), LABELS).spatial_dims == 2
    ds = from_arrays(np.zeros((6, 2, 4, 8, 8)), LABELS)
    assert ds.spatial_dims == 3 and ds.get_image(0).shape == (2, 4, 8, 8)
    ds = from_arrays(np.zeros((6, 4, 8, 8)), LABELS, spatial_dims=3)
    assert ds.spatial_dims == 3 and ds.get_image(0).shape == (1, 4, 8, 8)


@pytest.mark.parametrize("shape, kwargs, message", [
    ((6, 28, 28), {"spatial_dims": 3}, r"images of shape \(6, 28, 28\) are not 3D images: with spatial_dims=3 "
                                       r"give \(N, C, Z, Y, X\) or \(N, Z, Y, X\) for one channel"),
    ((6, 2, 4, 8, 8), {"spatial_dims": 2}, r"are not 2D images"),
    ((6, 8), {}, r"expected images \(N, C, Y, X\), \(N, Y, X\), \(N, C, Z, Y, X\) or \(N, Z, Y, X\), found "
                 r"shape \(6, 8\)"),
    ((6, 3, 8, 8), {"channel_names": ["r", "g"]}, r"2 channel names \['r', 'g'\] fit neither reading"),
    ((6, 3, 8, 8), {"spatial_dims": 2, "channel_names": ["r", "g"]},
     r"2 channel names \['r', 'g'\] for images with 3 channel\(s\)"),
    ((6, 3, 8, 8), {"spatial_dims": 1}, r"spatial_dims must be 2 or 3, got 1"),
])
def test_layouts_that_do_not_fit_are_refused(shape, kwargs, message):
    with pytest.raises(LabeledDataError, match=message):
        from_arrays(np.zeros(shape), LABELS, **kwargs)
