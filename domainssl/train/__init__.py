"""domainssl.train: pretraining runs from recipe files (recipe parsing and overrides, the run
itself with its data, views, encoder, method and Trainer, the run's pictures, and an in-memory
data module for arrays).

Names are re-exported lazily so that `import domainssl` does not import torch.

    recipe = apply_overrides(load_recipe("recipes/demo.yaml"), ["--trainer.max_steps", "100"])
    run_dir = run_pretraining(recipe, "runs/demo")
"""

from .._lazy import lazy_getattr

_EXPORTS = {
    "load_recipe": "recipe",
    "apply_overrides": "recipe",
    "RecipeError": "recipe",
    "run_pretraining": "pretraining",
    "ArrayDataModule": "array_data",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
