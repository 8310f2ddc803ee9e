import pytest

from domainssl.train.recipe import RecipeError, apply_overrides, load_recipe, parse_overrides

BASE = "recipes/xray_simclr.yaml"


@pytest.mark.parametrize("raw,value", [("1e-3", 1e-3), ("-2E+5", -2e5), ("1.5e-4", 1.5e-4),
                                       ("3", 3), ("true", True), ("null", None), ("1e", "1e")])
def test_override_values_parse_as_a_scientist_writes_them(raw, value):
    # PyYAML alone reads 1e-3 as the string '1e-3'; it must be a float before it reaches AdamW.
    [(key, parsed)] = parse_overrides(["--method.lr", raw])
    assert key == ["method", "lr"] and parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize("raw", ["1e-3", "1.5E-4", "2e+0"])
def test_an_exponent_learning_rate_reaches_the_recipe_as_a_float(raw):
    recipe = apply_overrides(load_recipe(BASE), ["--method.lr", raw])
    assert recipe["method"]["lr"] == float(raw) and type(recipe["method"]["lr"]) is float


def test_recipe_files_read_exponents_as_floats(tmp_path):
    text = open(BASE).read()
    assert "  lr: 1.0e-3\n" in text
    text = text.replace("  lr: 1.0e-3\n", "  lr: 2e-3\n", 1)
    path = tmp_path / "r.yaml"
    path.write_text(text)
    assert load_recipe(path)["method"]["lr"] == 2e-3


def test_override_without_value_is_an_actionable_error():
    with pytest.raises(RecipeError, match="--method.lr has no value"):
        apply_overrides(load_recipe(BASE), ["--method.lr"])


@pytest.mark.parametrize("override,match", [
    ("--checkpoint.every_n_step", "checkpoint.every_n_step .*did you mean checkpoint.every_n_steps"),
    ("--log.every", "unknown key log.every"),
    ("--monitor.label", "did you mean monitor.labels"),
    ("--pictures.view", "did you mean pictures.views"),
])
def test_a_misspelt_key_of_the_run_sections_is_refused(override, match):
    # these sections are read with .get(): a typo used to be ignored without a word
    with pytest.raises(RecipeError, match=match):
        apply_overrides(load_recipe(BASE), [override, "1"])


RECIPES = sorted((__import__("pathlib").Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_shipped_recipe_passes_the_section_check(path):
    assert len(RECIPES) >= 9
    load_recipe(path)


def test_epochs_on_the_command_line_replace_the_recipes_step_limit():
    recipe = load_recipe(BASE)
    assert recipe["trainer"]["max_steps"] > 0
    with pytest.warns(UserWarning, match="max_steps .* no longer applies"):
        epochs = apply_overrides(recipe, ["--trainer.max_epochs", "2"])
    assert epochs["trainer"]["max_epochs"] == 2 and epochs["trainer"]["max_steps"] == -1
    both = apply_overrides(recipe, ["--trainer.max_epochs", "2", "--trainer.max_steps", "50"])
    assert both["trainer"]["max_steps"] == 50
