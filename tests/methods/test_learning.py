"""Learning, not just running: every method raises kNN accuracy on a tiny structured dataset,
and a constant encoder trips the collapse monitor."""

import warnings

import pytest
import torch
from torch import nn

from domainssl.methods import CollapseWarning, build_method
from domainssl.models import build_encoder

# Settings found to learn in a few seconds on one CPU thread (tiny ViT, 16 tokens).
RUNS = {
    "simclr": dict(steps=60, lr=2e-3, views=(2, 0), hp=dict(proj_hidden_dim=128, proj_dim=64)),
    "mocov3": dict(steps=100, lr=5e-3, views=(2, 0),
                   hp=dict(proj_hidden_dim=128, proj_dim=64, pred_hidden_dim=128,
                           momentum_start=0.9)),
    "byol": dict(steps=150, lr=5e-3, views=(2, 0),
                 hp=dict(proj_hidden_dim=128, proj_dim=64, pred_hidden_dim=128,
                         momentum_start=0.99)),
    "dino": dict(steps=60, lr=2e-3, views=(2, 4),
                 hp=dict(out_dim=256, hidden_dim=128, bottleneck_dim=64, momentum_start=0.99)),
    "mae": dict(steps=100, lr=2e-3, views=(1, 0), pool="avg",
                hp=dict(decoder_dim=48, decoder_depth=1, decoder_heads=3, mask_ratio=0.5)),
}


def _tiny_vit(pool="token"):
    return build_encoder("vit2d_tiny", 1, 2, (32, 32), patch_size=8, embed_dim=48, depth=2,
                         num_heads=3, global_pool=pool)


def _image_loader(images, labels, **kw):
    data = [{"image": images[i], "label": labels[i]} for i in range(len(images))]
    return torch.utils.data.DataLoader(data, **kw)


@pytest.mark.parametrize("name", list(RUNS))
def test_method_raises_knn_accuracy(name, stripes, make_trainer):
    from synthetic import BatchViews

    run = RUNS[name]
    torch.manual_seed(0)
    # Views are made per batch after transfer, through the method's `batch_views` hook.
    method = build_method(name, _tiny_vit(run.get("pool", "token")), lr=run["lr"],
                          max_steps=run["steps"], warmup_steps=run["steps"] // 10,
                          weight_decay=0.01, knn_k=10, batch_views=BatchViews(*run["views"]),
                          **run["hp"])
    train = _image_loader(*stripes["train"], batch_size=64, shuffle=True, drop_last=True)
    evaluation = _image_loader(*stripes["eval"], batch_size=128)

    trainer = make_trainer(run["steps"])
    trainer.validate(method, evaluation, verbose=False)   # online kNN monitor, random init
    before = method.last_knn
    trainer.fit(method, train, evaluation)                # validates again at the end
    after = method.last_knn

    facts = method.card_facts()
    assert facts["method"] == name and facts["knn_acc"] == after
    assert facts["last_loss"] is not None and facts["emb_std"] > 0.1
    print(f"{name}: kNN {before:.3f} -> {after:.3f}")
    assert after >= before + 0.1, f"{name}: kNN {before:.3f} -> {after:.3f}"


class ConstantEncoder(nn.Module):
    """Every image maps to the same vector: the extreme of collapse."""

    def __init__(self, dim=16):
        super().__init__()
        self.embed_dim, self.arch, self.config = dim, "constant", None
        self.forward_tokens = None
        self.vector = nn.Parameter(torch.randn(dim))

    def forward(self, x):
        return self.vector.expand(x.shape[0], -1) + 0 * x.mean()


def test_constant_encoder_trips_collapse_monitor(stripes, make_trainer):
    from synthetic import ViewDataset

    method = build_method("simclr", ConstantEncoder(), lr=1e-3, max_steps=2,
                          proj_hidden_dim=16, proj_dim=8)
    train = torch.utils.data.DataLoader(ViewDataset(*stripes["train"]), batch_size=16)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        make_trainer(2).fit(method, train)
    assert any(issubclass(w.category, CollapseWarning) and "step 0" in str(w.message) for w in rec)
    assert method.card_facts()["collapse_warnings"] == 1
    assert method.card_facts()["emb_std"] == pytest.approx(0.0, abs=1e-6)
