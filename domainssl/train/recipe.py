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
import inspect
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


def unknown_key_error(section: str, key: Any, known: Sequence[str], where: str,
                      takes: str | None = None) -> RecipeError:
    """The error for a key `section.key` that is not one of `known`: where it was found, the
    closest valid key and the valid keys (`takes` names the section, default `section:`)."""
    close = difflib.get_close_matches(str(key), list(known), n=1)
    hint = f" (did you mean {section}.{close[0]}?)" if close else ""
    return RecipeError(f"{where}: unknown key {section}.{key}{hint}; {takes or f'`{section}:`'} takes "
                       f"{list(known)}")


def validate_recipe(recipe: dict[str, Any], where: str = "recipe",
                    overridden: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """Check top-level keys, the sections every run needs and the keys and hyper-parameter values
    of each section (before any data is read); return the recipe. `overridden`: the (section,
    key) pairs set on the command line, which errors name as `override --section.key`."""
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
    overridden = frozenset(overridden)

    def origin(section: str, key: Any) -> str:
        """Where a key came from: the command line, or the recipe (`where`)."""
        return f"override --{section}.{key}" if (section, str(key)) in overridden else where

    for section, known in SECTION_KEYS.items():
        body = recipe.get(section)
        if body is None:
            continue
        if not isinstance(body, dict):
            raise RecipeError(f"{where}: section `{section}:` must be a mapping of {list(known)}")
        for key in body:
            if key not in known:
                raise unknown_key_error(section, key, known, origin(section, key))
    _check_argument_sections(recipe, origin)
    strategy = str(recipe["trainer"].get("strategy", ""))
    if any(word in strategy for word in ("spawn", "fork", "notebook")):
        # These train in child processes and hand back only the weights: the run's monitors,
        # skip counts and pictures would be lost (and its callbacks would have to pickle).
        raise RecipeError(f"{where}: trainer.strategy {strategy!r} is not supported; use 'ddp' (what "
                          f"trainer.devices > 1 chooses by default) or start the run with torchrun")
    return recipe


# Keys of data/method/trainer that the run passes itself: a recipe cannot set them.
SET_BY_THE_RUN = {
    "data": ("work_dir", "transform", "collate_fn"),
    "method": ("encoder", "batch_views", "method_hparams"),
    "trainer": ("logger", "callbacks", "default_root_dir"),
}


def _init_keys(cls, skip: Sequence[str] = ()) -> dict[str, inspect.Parameter]:
    """The keyword parameters of `cls.__init__` (not self, *args, **kwargs or `skip`)."""
    return {name: p for name, p in inspect.signature(cls.__init__).parameters.items()
            if name != "self" and name not in skip
            and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)}


def section_parameters(section: str, recipe: dict[str, Any]) -> dict[str, inspect.Parameter]:
    """The keys `data:`, `method:` (of the recipe's method.name) or `trainer:` accept: the
    parameters of PatchDataModule, the method class with SSLMethod's, lightning.Trainer."""
    if section == "data":
        from ..data.datamodule import PatchDataModule

        return _init_keys(PatchDataModule, SET_BY_THE_RUN["data"])
    if section == "trainer":
        import lightning as L

        return _init_keys(L.Trainer, SET_BY_THE_RUN["trainer"])
    from ..methods.base import SSLMethod
    from ..methods.build import method_class

    cls = method_class(str(recipe["method"]["name"]))
    return {**_init_keys(SSLMethod, SET_BY_THE_RUN["method"]), **_init_keys(cls, SET_BY_THE_RUN["method"])}


def _check_argument_sections(recipe: dict[str, Any], origin) -> None:
    """Keys of `data:`, `method:`, `trainer:` against what they are passed to, and the method's
    hyper-parameter values against its signature, before the archive is scanned (a typo used to
    surface as a TypeError after the scan and statistics, a bad value deep in torch.optim)."""
    name = recipe["method"]["name"]
    try:
        method_params = section_parameters("method", recipe)
    except ValueError as exc:
        raise RecipeError(f"{origin('method', 'name')}: method.name: {exc}") from None
    for section in ("data", "method", "trainer"):
        params = method_params if section == "method" else section_parameters(section, recipe)
        known = sorted([*params, *(["name"] if section == "method" else [])])
        takes = f"`method:` of {name}" if section == "method" else None
        for key in recipe[section]:
            if key in known:
                continue
            if key in SET_BY_THE_RUN[section]:
                raise RecipeError(f"{origin(section, key)}: {section}.{key} is set by the run itself "
                                  f"(its folder, loggers, data and views); leave it out")
            raise unknown_key_error(section, key, known, origin(section, key), takes=takes)
    method = recipe["method"]
    for key, value in list(method.items()):
        if key != "name":
            method[key] = _checked_hparam(key, value, method_params[key], origin("method", key))
    if "patch_size" in recipe["data"]:
        _check_patch_size(recipe["data"]["patch_size"], origin("data", "patch_size"))


# method hyper-parameters with a fixed set of values
_CHOICES = {"compile": (False, True, "modules", "full"), "nan_guard": ("skip", "stop", "off")}
# integer hyper-parameters that count something present (sizes, layers, neighbours, steps)
_AT_LEAST_ONE = ("_dim", "_depth", "_heads", "knn_k", "num_global_crops", "max_steps")


def _found(value: Any) -> str:
    kind = {str: "text", bool: "a boolean", list: "a list", dict: "a mapping"}.get(type(value))
    return f"{value!r}" + (f" ({kind})" if kind else "")


def _checked_hparam(key: str, value: Any, param: inspect.Parameter, where: str) -> Any:
    """`value` of method hyper-parameter `key` if its type (from the signature's annotation and
    default) and range fit, an integral float as an int; else a RecipeError naming the key, the
    value and what is expected."""
    default = param.default
    annotation = str(param.annotation)
    optional = default is None or "None" in annotation

    def bad(expected: str) -> RecipeError:
        example = "" if default in (None, inspect.Parameter.empty) else f", e.g. {_plain_yaml(default)}"
        comma = ""
        if isinstance(value, str) and "," in value and _is_number(value.replace(",", ".")):
            comma = f" (decimals take a point: {value.replace(',', '.')}, not {value})"
        null = " or null" if optional else ""
        return RecipeError(f"{where}: method.{key} is {_found(value)}; expected {expected}{null}"
                           f"{example}{comma}")

    if value is None and optional:
        return value
    if key in _CHOICES:
        if (isinstance(value, (int, float)) and not isinstance(value, bool)) or value not in _CHOICES[key]:
            raise bad("one of " + ", ".join(_plain_yaml(v) for v in _CHOICES[key]))
        return value
    is_number = (isinstance(value, (int, float)) and not isinstance(value, bool)
                 and value == value and value not in (float("inf"), float("-inf")))
    if annotation == "bool" or isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if annotation.startswith("int") or type(default) is int:
        least = 1 if any(part in key for part in _AT_LEAST_ONE) else 0
        if not is_number or int(value) != value or value < least:
            raise bad(f"a whole number >= {least}")
        return int(value)
    if annotation.startswith("float") or isinstance(default, float):
        if key == "lr" or ("temp" in key and not key.endswith("_steps")):
            expected, fits = "a positive number", value > 0 if is_number else False
        elif key == "grad_clip":
            expected, fits = "a positive number (the largest gradient norm)", value > 0 if is_number else False
        elif "momentum" in key or key == "final_lr_ratio":
            expected, fits = "a number from 0 to 1", 0 <= value <= 1 if is_number else False
        elif key == "mask_ratio":
            expected, fits = "a number between 0 and 1 (the share of patches hidden)", (
                0 < value < 1 if is_number else False)
        else:
            expected, fits = "a number >= 0", value >= 0 if is_number else False
        if not fits:
            raise bad(expected)
        return value
    if annotation.startswith("Sequence[float]") or isinstance(default, tuple):
        n = len(default) if isinstance(default, tuple) else None
        fits = (isinstance(value, (list, tuple)) and (n is None or len(value) == n)
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
        if fits and key == "betas":
            fits = all(0 <= v < 1 for v in value)
        if not fits:
            raise bad(f"a list of {n or 'some'} numbers" + (" from 0 up to (not including) 1" if key == "betas" else ""))
        return list(value)
    if (annotation == "str" or isinstance(default, str)) and not isinstance(value, str):
        raise bad("text")
    return value


def _plain_yaml(value: Any) -> str:
    """`value` as a recipe writes it (true, [0.9, 0.999], 'skip', 0.001)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(list(value)) if isinstance(value, tuple) else repr(value)


def _check_patch_size(value: Any, where: str) -> None:
    """data.patch_size: one positive number (every spatial axis) or one per axis (2 or 3)."""
    values = value if isinstance(value, (list, tuple)) else [value]
    ok = (1 <= len(values) <= 3
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values))
    if not ok:
        raise RecipeError(f"{where}: data.patch_size is {_found(value)}; expected a positive number "
                          f"(the same on every spatial axis) or one per axis, e.g. [64, 64] or "
                          f"[16, 96, 96] (z, y, x)")


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


def apply_overrides(recipe: dict[str, Any], overrides: Sequence[str] | None,
                    source: str | None = None) -> dict[str, Any]:
    """A copy of `recipe` with dotted command-line overrides set (nested dicts created as needed).
    `source`: the recipe file, named by errors in keys the overrides did not set."""
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
    return validate_recipe(recipe, where=source or "recipe with overrides",
                           overridden={(parts[0], parts[1]) for parts, _ in parsed if len(parts) > 1})


# The first line of a run's config.yaml: how a run folder is told from a folder of other files.
RUN_CONFIG_HEADER = "# domainssl pretrain: the resolved recipe of this run (overrides applied)\n"


def dump_recipe(recipe: dict[str, Any], path) -> Path:
    """Write the resolved recipe (what the run used) as YAML, under RUN_CONFIG_HEADER."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(RUN_CONFIG_HEADER + yaml.safe_dump(recipe, sort_keys=False))
    return path


def is_run_config(path) -> bool:
    """Whether `path` is a config.yaml that `dump_recipe` wrote."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.readline() == RUN_CONFIG_HEADER
    except (OSError, UnicodeDecodeError):
        return False
