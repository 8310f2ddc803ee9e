"""The keys and hyper-parameter values of `data:`, `method:` and `trainer:` are checked against
what they are passed to (PatchDataModule, the method class, lightning.Trainer) when the recipe is
read: a typo or a bad value is one line naming where it came from, before any data is scanned."""

import pytest

from domainssl.train.recipe import RecipeError, apply_overrides, load_recipe

BASE = "recipes/xray_simclr.yaml"


def _override(*args, recipe=BASE):
    return apply_overrides(load_recipe(recipe), list(args), source=recipe)


@pytest.mark.parametrize("args,message", [
    # a comma decimal used to end in a TypeError deep in torch.optim after the scan
    (["--method.lr", "1,5e-4"], "override --method.lr: method.lr is '1,5e-4' (text); expected a "
                                "positive number, e.g. 0.001 (decimals take a point: 1.5e-4, not 1,5e-4)"),
    (["--method.lr", "0"], "method.lr is 0; expected a positive number"),
    # a negative temperature used to train without a word
    (["--method.temperature", "-1"], "override --method.temperature: method.temperature is -1; "
                                     "expected a positive number, e.g. 0.2"),
    (["--method.proj_dim", "64.5"], "method.proj_dim is 64.5; expected a whole number >= 1, e.g. 128"),
    (["--method.proj_dim", "true"], "method.proj_dim is True (a boolean); expected a whole number"),
    (["--method.warmup_steps", "-5"], "method.warmup_steps is -5; expected a whole number >= 0"),
    (["--method.weight_decay_end", "x"], "method.weight_decay_end is 'x' (text); expected a number "
                                         ">= 0 or null"),
    (["--method.betas", "[0.9]"], "method.betas is [0.9] (a list); expected a list of 2 numbers"),
    (["--method.betas", "[0.9, 1.5]"], "expected a list of 2 numbers from 0 up to"),
    (["--method.nan_guard", "skipp"], "method.nan_guard is 'skipp' (text); expected one of 'skip', "
                                      "'stop', 'off'"),
    (["--method.compile", "1"], "method.compile is 1; expected one of false, true, 'modules', 'full'"),
])
def test_a_bad_method_value_names_the_key_the_value_and_what_is_expected(args, message):
    with pytest.raises(RecipeError) as info:
        _override(*args)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("recipe,args,message", [
    ("recipes/multispectral_mocov3.yaml", ["--method.momentum_start", "1.5"],
     "method.momentum_start is 1.5; expected a number from 0 to 1"),
    ("recipes/mr_dino3d.yaml", ["--method.teacher_temp", "0"], "method.teacher_temp is 0; expected a positive"),
    ("recipes/mr_dino3d.yaml", ["--method.center_momentum", "-0.1"], "expected a number from 0 to 1"),
    ("recipes/sentinel2_mae.yaml", ["--method.mask_ratio", "1"], "method.mask_ratio is 1; expected a "
                                                                  "number between 0 and 1"),
    ("recipes/sentinel2_mae.yaml", ["--method.norm_pix_loss", "yes please"],
     "method.norm_pix_loss is 'yes please' (text); expected true or false"),
])
def test_each_methods_own_hyper_parameters_are_checked(recipe, args, message):
    with pytest.raises(RecipeError, match="override --"):
        _override(*args, recipe=recipe)
    with pytest.raises(RecipeError) as info:
        _override(*args, recipe=recipe)
    assert message in str(info.value)


def test_good_values_pass_and_a_whole_float_count_becomes_an_int():
    recipe = _override("--method.lr", "1.5e-4", "--method.warmup_steps", "1e3", "--method.betas",
                       "[0.9, 0.95]", "--method.grad_clip", "null", "--method.compile", "modules")
    method = recipe["method"]
    assert method["lr"] == 1.5e-4 and method["warmup_steps"] == 1000 and type(method["warmup_steps"]) is int
    assert method["betas"] == [0.9, 0.95] and method["grad_clip"] is None and method["compile"] == "modules"


@pytest.mark.parametrize("args,message", [
    # these used to fail after the scan: SSLMethod.__init__() / Trainer.__init__() / PatchDataModule
    # "got an unexpected keyword argument"
    (["--method.temprature", "0.1"], "override --method.temprature: unknown key method.temprature "
                                     "(did you mean method.temperature?); `method:` of simclr takes ["),
    (["--trainer.max_step", "5"], "override --trainer.max_step: unknown key trainer.max_step "
                                  "(did you mean trainer.max_steps?); `trainer:` takes ["),
    (["--data.batchsize", "4"], "override --data.batchsize: unknown key data.batchsize (did you mean "
                                "data.batch_size?); `data:` takes ["),
    (["--trainer.logger", "true"], "override --trainer.logger: trainer.logger is set by the run itself"),
    (["--data.work_dir", "/x"], "data.work_dir is set by the run itself"),
    (["--method.name", "simclrr"], "override --method.name: method.name: unknown SSL method 'simclrr'"),
])
def test_a_misspelt_key_of_the_argument_sections_is_refused_with_the_valid_keys(args, message):
    with pytest.raises(RecipeError) as info:
        _override(*args)
    text = str(info.value)
    assert message in text
    if "unknown key" in text:
        assert "'lr'" in text or "'max_steps'" in text or "'batch_size'" in text  # the valid keys


def test_a_misspelt_key_in_the_recipe_file_names_the_file(tmp_path):
    text = open(BASE).read()
    assert "  temperature:" in text
    path = tmp_path / "mine.yaml"
    path.write_text(text.replace("  temperature:", "  temprature:", 1))
    with pytest.raises(RecipeError, match=rf"^{path}: unknown key method.temprature \(did you mean "
                                          r"method.temperature\?\)"):
        load_recipe(path)
    # a key of the recipe that another method does not take: the file is named, with the method
    with pytest.raises(RecipeError, match=rf"^{BASE}: unknown key method.temperature; `method:` of mae "):
        _override("--method.name", "mae")


def test_a_single_patch_size_is_one_value_for_every_axis_and_a_bad_one_is_refused():
    assert _override("--data.patch_size", "64")["data"]["patch_size"] == 64
    assert _override("--data.patch_size", "[8, 64, 64]")["data"]["patch_size"] == [8, 64, 64]
    for bad in ("0", "[64, -1]", "big", "[1, 2, 3, 4]"):
        with pytest.raises(RecipeError, match="override --data.patch_size: data.patch_size is .*; "
                                              "expected a positive number"):
            _override("--data.patch_size", bad)


def test_the_run_config_header_marks_a_folder_written_by_a_run(tmp_path):
    from domainssl.train.recipe import dump_recipe, is_run_config

    recipe = load_recipe(BASE)
    path = dump_recipe(recipe, tmp_path / "config.yaml")
    assert is_run_config(path) and load_recipe(path) == recipe
    (tmp_path / "other.yaml").write_text(open(BASE).read())
    assert not is_run_config(tmp_path / "other.yaml") and not is_run_config(tmp_path / "missing.yaml")
