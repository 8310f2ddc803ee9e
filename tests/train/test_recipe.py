import pytest

from domainssl.train.recipe import RecipeError, apply_overrides, load_recipe

BASE = "recipes/xray_simclr.yaml"


@pytest.mark.parametrize("raw,value", [("1e-3", 1e-3), ("-2E+5", -2e5), ("1.5e-4", 1.5e-4),
                                       ("3", 3), ("true", True), ("null", None), ("1e", "1e")])
def test_override_values_parse_as_a_scientist_writes_them(raw, value):
    # PyYAML alone reads 1e-3 as the string '1e-3'; it must be a float before it reaches AdamW.
    recipe = apply_overrides(load_recipe(BASE), ["--method.lr", raw])
    assert recipe["method"]["lr"] == value and type(recipe["method"]["lr"]) is type(value)


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
