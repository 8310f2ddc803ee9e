"""Collapse score, NaN guard and kNN accuracy."""

import warnings

import pytest
import torch

from domainssl.methods.monitors import (CollapseMonitor, CollapseWarning, NonFiniteLossError,
                                        check_finite, embedding_std, knn_accuracy)


def test_embedding_std_healthy_and_collapsed():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2048, 64, generator=g)
    assert embedding_std(z).item() == pytest.approx(1.0, abs=0.05)
    const = torch.ones(16, 64) * 3.0
    assert embedding_std(const).item() == pytest.approx(0.0, abs=1e-6)
    # scaling each embedding does not change the score (L2-normalised first)
    assert embedding_std(z * 7).item() == pytest.approx(embedding_std(z).item(), rel=1e-5)


def test_collapse_monitor_warns_once_per_drop():
    mon = CollapseMonitor(threshold=0.1)
    healthy, collapsed = torch.randn(64, 32), torch.ones(64, 32)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        mon.update(healthy, 0)
        mon.update(collapsed, 1)
        mon.update(collapsed, 2)
        mon.update(healthy, 3)
        mon.update(collapsed, 4)
    msgs = [str(w.message) for w in rec if issubclass(w.category, CollapseWarning)]
    assert len(msgs) == 2 and msgs[0].startswith("step 1:") and msgs[1].startswith("step 4:")
    assert mon.tripped == 2 and mon.last == pytest.approx(0.0, abs=1e-6)


def test_check_finite_actions():
    assert check_finite(torch.tensor(1.0), 3, "skip")
    with pytest.warns(RuntimeWarning, match="step 7"):
        assert not check_finite(torch.tensor(float("nan")), 7, "skip")
    with pytest.raises(NonFiniteLossError, match="step 9"):
        check_finite(torch.tensor(float("inf")), 9, "stop")
    assert check_finite(torch.tensor(float("nan")), 1, "off")
    with pytest.raises(ValueError):
        check_finite(torch.tensor(1.0), 1, "ignore")


def test_knn_accuracy_separable_and_random():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 16, generator=g) * 5
    labels = torch.arange(90) % 3
    feats = centres[labels] + 0.1 * torch.randn(90, 16, generator=g)
    assert knn_accuracy(feats, labels, k=5) == 1.0
    noise = torch.randn(600, 16, generator=g)
    acc = knn_accuracy(noise, torch.arange(600) % 3, k=5)
    assert 0.2 < acc < 0.47  # chance level is 1/3
    # explicit query set
    q = centres[torch.tensor([2, 0])]
    assert knn_accuracy(feats, labels, 5, q, torch.tensor([2, 0])) == 1.0
