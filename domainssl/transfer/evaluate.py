"""Label efficiency of an exported encoder against the same architecture randomly initialised.

`compare_encoders(encoder_dir, labeled, ...)` loads the encoder and its random-init twin (and any
other encoder dirs), prepares each one's inputs as its card says, extracts frozen features once
(cached), and runs the few-shot protocol. The `probe` command and the demo call it.
"""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Any, Sequence

from .fewshot import Candidate, run_fewshot
from .labeled import LabeledSet

RESERVED_NAMES = ("pretrained", "random_init")


def check_device(device) -> str:
    """`device` as a torch device string, if this machine has it; else a ValueError saying what it has.

    Accepts cpu, cuda, cuda:N and mps (or a `torch.device`). Checked before any work starts, so
    that a typo or a missing GPU is one line rather than a traceback minutes into a probe.
    """
    import torch

    text = str(device).strip().lower()
    if text == "cpu":
        return text
    have = available_devices()
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise ValueError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps "
                         f"(available here: {', '.join(have)})") from None
    if dev.type == "cpu":
        return text
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {device!r}: CUDA is not available here (torch {torch.__version__} "
                             f"sees no GPU); available here: {', '.join(have)}")
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device {device!r}: this machine has {count} CUDA device(s), "
                             f"cuda:0 to cuda:{count - 1}")
        return text
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {device!r}: MPS (Apple GPU) is not available here; available here: "
                             f"{', '.join(have)}")
        return text
    raise ValueError(f"device {device!r} is not supported; use cpu, cuda, cuda:N or mps "
                     f"(available here: {', '.join(have)})")


def available_devices() -> list[str]:
    """The devices `check_device` accepts on this machine, e.g. ["cpu", "cuda", "cuda:0"]."""
    import torch

    have = ["cpu"]
    if torch.cuda.is_available() and torch.cuda.device_count():
        have += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        have.append("mps")
    return have


def encoder_names(dirs: Sequence) -> list[str]:
    """A unique, readable report name per encoder directory: the shortest path suffix that tells
    it apart from the others ("runA/encoder", "runB/encoder"; just "encoder" when alone).

    `compare_encoders` names the main encoder and the compared ones together, so that with
    --compare every row says which run it is. Names never equal "pretrained" or "random_init"
    (the rows of a lone main encoder and of its random-init twin); a directory given twice gets
    " (2)", " (3)", ... so that no two rows merge.
    """
    parts = [Path(d).resolve().parts for d in dirs]

    def suffix(p: tuple, n: int) -> str:
        return PurePath(*p[-n:]).as_posix()

    names = []
    for i, p in enumerate(parts):
        for n in range(1, len(p) + 1):
            name = suffix(p, n)
            clash = any(suffix(q, n) == name for j, q in enumerate(parts) if j != i and q != p)
            if not clash and name not in RESERVED_NAMES:
                break
        names.append(name)
    # The same directory twice (or a path that is a reserved name in full): number the repeats.
    seen: dict[str, int] = {name: 1 for name in RESERVED_NAMES}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


def _candidate(name: str, encoder, card: dict, labeled: LabeledSet, *, weights_id: str, modes, channel_map,
               normalization: str, resize, cache_dir, batch_size: int, device, progress: bool,
               compared: bool = False) -> Candidate:
    from .features import cache_key, cached_features
    from .preprocess import make_input_spec, prepare_inputs

    from .card import CardMismatchError

    try:
        spec = make_input_spec(card, labeled, channel_map=channel_map, normalization=normalization,
                               resize=resize)
    except CardMismatchError as exc:
        if not compared:
            raise
        # with --compare, say which encoder the data does not fit
        raise CardMismatchError(f"compared encoder {name}: {exc}") from exc
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
    """Few-shot comparison of `encoder_dir`, its random init and `others`.

    Alone, `encoder_dir`'s rows are named "pretrained". With `others`, every encoder, the main
    one included, is named by the shortest path suffix that tells them apart (`encoder_names`:
    "runA/encoder", "runB/encoder"), and the main encoder's random-init twin comes last;
    meta["encoder_name"] is the main encoder's name and meta["candidates"][name]["encoder_dir"]
    says which directory each name is.

    Args:
        encoder_dir: an exported encoder directory.
        labeled: a `LabeledSet` with a split (see `LabeledSet.with_split`).
        others: more encoder directories to put in the same table.
        random_init: add "random_init", `encoder_dir`'s architecture randomly initialised.
        channel_map, normalization, resize: see `preprocess.make_input_spec`.
        device: torch device for features and fine-tuning (`check_device`: cpu, cuda, cuda:N, mps).
        finetune_kw: `finetune.finetune_predict` options; its device defaults to `device`.
        init_seed: torch seed for the random-init twin.
        Other args: see `fewshot.run_fewshot`.

    Returns:
        (rows, meta): the protocol's rows and a dict describing encoders, data and input specs.
    """
    import torch

    from .encoder_io import load_encoder

    device = check_device(device)
    # Fine-tuning runs where the features do unless told otherwise.
    finetune_kw = {"device": device, **(finetune_kw or {})}
    encoder = load_encoder(encoder_dir, device=device)
    card = encoder.card
    common = dict(modes=modes, channel_map=channel_map, normalization=normalization, resize=resize,
                  cache_dir=cache_dir, batch_size=batch_size, device=device, progress=progress)
    others = list(others)
    # With --compare, the main encoder is named by its path like the others: "pretrained" beside
    # "runB/encoder" would not say which run it is.
    names = encoder_names([encoder_dir, *others]) if others else ["pretrained"]
    main = _candidate(names[0], encoder, card, labeled, weights_id=card["weights"].get("sha256"), **common)
    main.info["encoder_dir"] = str(encoder_dir)
    candidates = [main]
    for other, name in zip(others, names[1:]):
        enc = load_encoder(other, device=device)
        candidates.append(_candidate(name, enc, enc.card, labeled, weights_id=enc.card["weights"].get("sha256"),
                                     compared=True, **common))
        candidates[-1].info["encoder_dir"] = str(other)
    if random_init:
        torch.manual_seed(init_seed)
        twin = load_encoder(encoder_dir, random_init=True, device=device)
        candidates.append(_candidate("random_init", twin, card, labeled,
                                     weights_id=["random_init", card["build"], init_seed], **common))
        candidates[-1].info["random_init_of"] = str(encoder_dir)
    rows = run_fewshot(candidates, labeled, shots=shots, seeds=seeds, modes=modes, knn_k=knn_k,
                       linear_c=linear_c, finetune_kw=finetune_kw, progress=progress)
    meta = {"encoder_dir": str(encoder_dir), "encoder_name": names[0], "arch": card["arch"], "method": card["method"],
            "data": labeled.summary(), "modes": list(modes), "seeds": seeds, "knn_k": knn_k,
            "candidates": {c.name: c.info for c in candidates}}
    return rows, meta
