"""`finetune_predict` takes what the other transfer functions take (text labels, numpy arrays) and
refuses the rest with a ValueError that says what to pass (it raised TypeError, AttributeError
'clone' and IndexError)."""

import numpy as np
import pytest
import torch

from domainssl.transfer.finetune import finetune_predict

FAST = {"steps": 4, "batch_size": 8, "lr": 1e-3, "head_lr": 1e-2}


@pytest.fixture
def task(striped):
    from domainssl.models import build_encoder

    images, labels = striped
    x = ((images - 100.0) / 20.0).astype(np.float32)
    torch.manual_seed(0)
    return build_encoder("test_resnet", 2, 2, (16, 16)), x, labels


def test_text_labels_are_encoded_as_the_probes_encode_them(task):
    enc, x, labels = task
    as_index = finetune_predict(enc, torch.from_numpy(x[::2]), labels[::2], torch.from_numpy(x[1::2]), 2, **FAST)
    names = np.array(["horizontal", "vertical"])          # sorted, as scikit-learn orders classes
    as_text = finetune_predict(enc, torch.from_numpy(x[::2]), names[labels[::2]], torch.from_numpy(x[1::2]), **FAST)
    assert as_text.dtype.kind == "U" and set(as_text) <= set(names)
    np.testing.assert_array_equal(as_text, names[as_index])
    # integer labels that are not indices: their values are the classes, as for linear_probe
    values = finetune_predict(enc, torch.from_numpy(x[::2]), labels[::2] * 5 + 3, torch.from_numpy(x[1::2]), **FAST)
    np.testing.assert_array_equal(values, as_index * 5 + 3)


def test_numpy_inputs_give_the_predictions_of_tensors(task):
    enc, x, labels = task
    from_tensors = finetune_predict(enc, torch.from_numpy(x[::2]), labels[::2], torch.from_numpy(x[1::2]), 2, **FAST)
    from_numpy = finetune_predict(enc, x[::2], labels[::2], x[1::2], 2, **FAST)
    from_float64 = finetune_predict(enc, x[::2].astype(np.float64), list(labels[::2]), x[1::2].astype(np.float64),
                                    2, **FAST)
    assert from_numpy.shape == (12,)
    np.testing.assert_array_equal(from_numpy, from_tensors)
    np.testing.assert_array_equal(from_float64, from_tensors)
    assert finetune_predict(enc, x[::2], labels[::2], x[:0], 2, **FAST).shape == (0,)


@pytest.mark.parametrize("labels, num_classes, message", [
    ([0, 1, 2, 1] * 3, 2, r"labels \[2\] are not class indices 0..1 of num_classes=2; pass num_classes=3"),
    ([0, 1, -1, 1] * 3, 2, r"labels \[-1\] are not class indices"),
    (["a", "b", "c", "b"] * 3, 2, r"train_y has 3 distinct labels \['a', 'b', 'c'\], more than num_classes=2; "
                                  r"pass num_classes=3 or None"),
    ([0, 1] * 6, 1, r"num_classes must be an integer >= 2 or None, got 1"),
    ([0, 1] * 5, 2, r"train_y must hold one label per training input \(12\), got shape \(10,\)"),
    ([1] * 12, None, r"fine-tuning: training labels of at least 2 classes are needed, found only class 1"),
    (np.array([0, "a"] * 6, dtype=object), None, r"train_y mixes label types"),
])
def test_labels_that_do_not_fit_are_refused(task, labels, num_classes, message):
    enc, x, _ = task
    with pytest.raises(ValueError, match=message):
        finetune_predict(enc, x[::2], labels, x[1::2], num_classes, **FAST)


@pytest.mark.parametrize("train, test, message", [
    (lambda x: x[::2, 0], lambda x: x[1::2], r"train_inputs must be \(N, C, Y, X\) or \(N, C, Z, Y, X\), got "
                                             r"shape \(12, 16, 16\)"),
    (lambda x: x[::2], lambda x: x[1::2, :1], r"test_inputs of shape \(12, 1, 16, 16\) do not match train_inputs "
                                              r"of shape \(12, 2, 16, 16\)"),
    (lambda x: x[::2].astype(str), lambda x: x[1::2], r"train_inputs must be a numeric array"),
])
def test_inputs_that_do_not_fit_are_refused(task, train, test, message):
    enc, x, labels = task
    with pytest.raises(ValueError, match=message):
        finetune_predict(enc, train(x), labels[::2], test(x), 2, **FAST)
