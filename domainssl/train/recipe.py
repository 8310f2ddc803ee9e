"""Pretraining recipes: one YAML file names the data, views, encoder, method and trainer.

    seed: 0
    data:    PatchDataModule arguments (root, patch_size, patch_unit, batch_size, num_workers, ...)
    views:   {preset, kind, spatial_dims?, gpu?, ...view overrides}  (domainssl.transforms)
    model:   {arch, ...build_encoder options}  (in_chans, spatial_dims, input_size come from
             the data and the views)
    method:  {name, ...hyper-parameters}  (domainssl.methods)
    trainer: lightning.Trainer arguments (max_steps, max_epochs, accelerator, precision, ...)
    checkpoint: {every_n_steps}    log: {every_n_steps}    pictures: {views, curves, reconstructions}
    monitor: {labels: CSV or folder, every_n_steps, split, max_items}   optional labeled images for a
             kNN accuracy logged during pretraining (val/knn_acc), next to the embedding std

Command-line overrides are dotted keys with YAML values: `--data.root /archive`,
`--trainer.max_steps 100`, `--model.arch=resnet18`, `--data.patch_size [32,32]`.
"""

from __future__ import annotations

import copy
import difflib
import re
import warnings
from pathlib import Path
from typing import Any, Sequence

import yaml


class _RecipeLoader(yaml.SafeLoader):
    """YAML as a scientist writes it: `1e-3` is a float (PyYAML's YAML 1.1 rules read a number
    without a dot, like 1e-3, as a string, which only fails later, deep in the optimiser)."""


_RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_RecipeLoader)  # noqa: S506 - a SafeLoader subclass

SECTIONS = ("data", "views", "model", "method", "trainer", "checkpoint", "log", "pictures", "monitor")
TOP_LEVEL = SECTIONS + ("seed", "name", "description")
# The keys of the small sections the run itself reads (data/views/model/method/trainer are
# checked by what they are passed to); a misspelt key would otherwise be ignored silently.
SECTION_KEYS = {
    "checkpoint": ("every_n_steps",),
    "log": ("every_n_steps",),
    "pictures": ("curves", "views", "reconstructions"),
    "monitor": ("labels", "split", "max_items", "every_n_steps", "channel_map"),
}
DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "trainer": {"max_epochs": -1, "accelerator": "auto", "devices": 1},
    "checkpoint": {"every_n_steps": 500},
    "log": {"every_n_steps": 10},
    "pictures": {"views": True, "curves": True, "reconstructions": True},
}


class RecipeError(ValueError):
    """A recipe or override that cannot be used (the message names the key and the fix)."""


def _merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_recipe(path) -> dict[str, Any]:
    """Read a recipe YAML, fill the defaults and check its sections."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: no such recipe; see the recipes/ folder for examples")
    try:
        recipe = _load_yaml(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(recipe, dict):
        raise RecipeError(f"{path}: a recipe is a mapping with sections {list(SECTIONS)}")
    return validate_recipe(_merge(DEFAULTS, recipe), where=str(path))


def validate_recipe(recipe: dict[str, Any], where: str = "recipe") -> dict[str, Any]:
    """Check top-level keys and the sections every run needs; return the recipe."""
    unknown = [k for k in recipe if k not in TOP_LEVEL]
    if unknown:
        raise RecipeError(f"{where}: unknown top-level keys {unknown}; a recipe has {list(TOP_LEVEL)}")
    for key in ("data", "views", "model", "method", "trainer"):
        if not isinstance(recipe.get(key), dict):
            raise RecipeError(f"{where}: section `{key}:` is missing or not a mapping")
    if "arch" not in recipe["model"]:
        raise RecipeError(f"{where}: model.arch is required (a timm name, vit3d_small, resnet3d_18, ...)")
    if "name" not in recipe["method"]:
        raise RecipeError(f"{where}: method.name is required (simclr, mocov3, byol, dino, mae)")
    if "preset" not in recipe["views"]:
        raise RecipeError(f"{where}: views.preset is required (ct, mr, multispectral, rgb, fluorescence)")
    for section, known in SECTION_KEYS.items():
        body = recipe.get(section)
        if body is None:
            continue
        if not isinstance(body, dict):
            raise RecipeError(f"{where}: section `{section}:` must be a mapping of {list(known)}")
        for key in body:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f" (did you mean {section}.{close[0]}?)" if close else ""
                raise RecipeError(f"{where}: unknown key {section}.{key}{hint}; `{section}:` takes "
                                  f"{list(known)}")
    strategy = str(recipe["trainer"].get("strategy", ""))
    if any(word in strategy for word in ("spawn", "fork", "notebook")):
        # These train in child processes and hand back only the weights: the run's monitors,
        # skip counts and pictures would be lost (and its callbacks would have to pickle).
        raise RecipeError(f"{where}: trainer.strategy {strategy!r} is not supported; use 'ddp' (what "
                          f"trainer.devices > 1 chooses by default) or start the run with torchrun")
    return recipe


def parse_overrides(args: Sequence[str]) -> list[tuple[list[str], Any]]:
    """`["--data.root", "X", "--trainer.max_steps=5"]` -> [(["data", "root"], "X"), (["trainer", ...], 5)].

    Values are parsed as YAML scalars or flow collections (`5`, `1e-3`, `null`, `[32, 32]`, `{a: 1}`).
    """
    out = []
    i = 0
    args = list(args)
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) < 3:
            raise RecipeError(f"override {arg!r}: expected --section.key VALUE (e.g. --data.root /archive)")
        key = arg[2:]
        if "=" in key:
            key, raw = key.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(args) or (args[i + 1].startswith("--") and len(args[i + 1]) > 2
                                      and not _is_number(args[i + 1])):
                raise RecipeError(f"override --{key} has no value (e.g. --{key} VALUE)")
            raw = args[i + 1]
            i += 2
        parts = key.split(".")
        if parts[0] not in TOP_LEVEL or (parts[0] in SECTIONS and len(parts) < 2) or any(not p for p in parts):
            raise RecipeError(f"override --{key}: keys start with one of {list(TOP_LEVEL)} and name a field "
                              f"(e.g. --trainer.max_steps 100)")
        try:
            value = _load_yaml(raw)
        except yaml.YAMLError:
            value = raw
        out.append((parts, value))
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def apply_overrides(recipe: dict[str, Any], overrides: Sequence[str] | None) -> dict[str, Any]:
    """A copy of `recipe` with dotted command-line overrides set (nested dicts created as needed)."""
    recipe = copy.deepcopy(recipe)
    parsed = parse_overrides(overrides or [])
    keys = {tuple(parts) for parts, _ in parsed}
    if ("trainer", "max_epochs") in keys and ("trainer", "max_steps") not in keys:
        # Lightning stops at whichever limit comes first, and the LR / weight-decay / momentum
        # schedules span max_steps: a recipe's max_steps would cut a run given in epochs short
        # (or leave it in warm-up) without a word. Epochs asked for on the command line rule.
        steps = (recipe.get("trainer") or {}).get("max_steps")
        if steps and steps > 0:
            warnings.warn(f"--trainer.max_epochs given: the recipe's trainer.max_steps {steps} no "
                          "longer applies (the schedules span the epochs); give --trainer.max_steps "
                          "too to stop at whichever comes first", UserWarning, stacklevel=2)
            recipe["trainer"]["max_steps"] = -1
    for parts, value in parsed:
        node = recipe
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return validate_recipe(recipe, where="recipe with overrides")


def dump_recipe(recipe: dict[str, Any], path) -> Path:
    """Write the resolved recipe (what the run used) as YAML."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path
