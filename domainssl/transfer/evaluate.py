"""Label efficiency of an exported encoder against the same architecture randomly initialised.

`compare_encoders(encoder_dir, labeled, ...)` loads the encoder and its random-init twin (and any
other encoder dirs), prepares each one's inputs as its card says, extracts frozen features once
(cached), and runs the few-shot protocol. The `probe` command and the demo call it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .fewshot import Candidate, run_fewshot
from .labeled import LabeledSet


def _candidate(name: str, encoder, card: dict, labeled: LabeledSet, *, weights_id: str, modes, channel_map,
               normalization: str, resize, cache_dir, batch_size: int, device, progress: bool) -> Candidate:
    from .features import cache_key, cached_features
    from .preprocess import make_input_spec, prepare_inputs

    spec = make_input_spec(card, labeled, channel_map=channel_map, normalization=normalization, resize=resize)
    inputs = prepare_inputs(labeled, spec, progress=progress)
    feats = None
    if any(m in ("linear", "knn") for m in modes):
        key = cache_key(weights_id, labeled.fingerprint, spec.describe())
        feats = cached_features(encoder, inputs, key, cache_dir, batch_size=batch_size, device=device,
                                progress=progress, label=f"features {name}")
    return Candidate(name=name, features=feats, inputs=inputs if "finetune" in modes else None,
                     encoder=encoder, info={"input_spec": spec.describe(), "arch": card["arch"]})


def compare_encoders(encoder_dir, labeled: LabeledSet, *, shots=(1, 5, 10, "all"), seeds: int = 5,
                     modes: Sequence[str] = ("linear",), others: Sequence = (), random_init: bool = True,
                     channel_map=None, normalization: str = "card", resize: str | None = None,
                     knn_k: int = 20, linear_c: float = 1.0, finetune_kw: dict | None = None,
                     cache_dir=None, batch_size: int = 256, device="cpu", init_seed: int = 0,
                     progress: bool = True) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Few-shot comparison of `encoder_dir` ("pretrained"), its random init and `others`.

    Args:
        encoder_dir: an exported encoder directory.
        labeled: a `LabeledSet` with a split (see `LabeledSet.with_split`).
        others: more encoder directories, reported under their folder names.
        channel_map, normalization, resize: see `preprocess.make_input_spec`.
        init_seed: torch seed for the random-init twin.
        Other args: see `fewshot.run_fewshot`.

    Returns:
        (rows, meta): the protocol's rows and a dict describing encoders, data and input specs.
    """
    import torch

    from .encoder_io import load_encoder

    encoder = load_encoder(encoder_dir, device=device)
    card = encoder.card
    common = dict(modes=modes, channel_map=channel_map, normalization=normalization, resize=resize,
                  cache_dir=cache_dir, batch_size=batch_size, device=device, progress=progress)
    candidates = [_candidate("pretrained", encoder, card, labeled, weights_id=card["weights"].get("sha256"),
                             **common)]
    if random_init:
        torch.manual_seed(init_seed)
        twin = load_encoder(encoder_dir, random_init=True, device=device)
        candidates.append(_candidate("random_init", twin, card, labeled,
                                     weights_id=["random_init", card["build"], init_seed], **common))
    for other in others:
        enc = load_encoder(other, device=device)
        candidates.append(_candidate(Path(other).name, enc, enc.card, labeled,
                                     weights_id=enc.card["weights"].get("sha256"), **common))
    rows = run_fewshot(candidates, labeled, shots=shots, seeds=seeds, modes=modes, knn_k=knn_k,
                       linear_c=linear_c, finetune_kw=finetune_kw, progress=progress)
    meta = {"encoder_dir": str(encoder_dir), "arch": card["arch"], "method": card["method"],
            "data": labeled.summary(), "modes": list(modes), "seeds": seeds, "knn_k": knn_k,
            "candidates": {c.name: c.info for c in candidates}}
    return rows, meta
