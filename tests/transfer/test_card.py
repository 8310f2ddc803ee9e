"""The encoder card: schema checks and the checks of data against the card (no torch needed)."""

import json

import pytest

from domainssl.transfer.card import (CardError, CardMismatchError, CardMismatchWarning, check_spatial,
                                     check_value_range, encoder_input_names, parse_channel_map, read_card, render_readme, resolve_channels,
                                     validate_card, write_card)


def _card(**over):
    card = {
        "version": 1, "arch": "test_resnet", "build": {"arch": "test_resnet"}, "spatial_dims": 2,
        "in_chans": 3, "channel_names": ["B04", "B03", "B08"], "input_size": [32, 32],
        "patch_size": None, "spacing": [10.0, 10.0], "units": ["m", "m"],
        "normalization": {"mode": "zscore", "stats": {"channel_names": ["B08", "B04", "B03"],
                                                      "mean": [2500.0, 1000.0, 900.0], "std": [600.0, 300.0, 250.0]}},
        "embed_dim": 96, "method": {"name": "simclr"}, "data": {"images": 4}, "metrics": {"loss": 1.0},
        "weights": {"file": "model.safetensors"},
    }
    card.update(over)
    return card


def test_write_and_read_round_trip(tmp_path):
    write_card(_card(), tmp_path)
    card = read_card(tmp_path)
    assert card["channel_names"] == ["B04", "B03", "B08"]
    readme = (tmp_path / "README.md").read_text()
    assert "B08: mean 2500" in readme and "10.0, 10.0" in readme


def test_ct_windows_name_each_encoder_channel():
    # one HU channel, three windows: the card keeps the data channel, the README and
    # encoder_input_names say what each of the 3 encoder channels is, in ct_windows' order
    card = _card(in_chans=3, channel_names=["CT"],
                 normalization={"mode": "window", "windows": [[40, 400], [-600, 1500], [400, 1800]]})
    assert encoder_input_names(card) == ["CT[L40,W400]", "CT[L-600,W1500]", "CT[L400,W1800]"]
    assert "channels (3): CT[L40,W400], CT[L-600,W1500], CT[L400,W1800] (from the data channels CT)" \
        in render_readme(card)
    assert encoder_input_names(_card()) == ["B04", "B03", "B08"]
    assert "channels (3): B04, B03, B08\n" in render_readme(_card())


def test_read_card_errors_name_the_problem(tmp_path):
    with pytest.raises(CardError, match="domainssl export"):
        read_card(tmp_path)
    (tmp_path / "encoder.json").write_text(json.dumps({"arch": "x"}))
    with pytest.raises(CardError, match="missing keys"):
        read_card(tmp_path)
    with pytest.raises(CardError, match="version"):
        validate_card(_card(version=99))
    with pytest.raises(CardError, match="channel_names"):
        validate_card(_card(in_chans=4))
    with pytest.raises(CardError, match="stats.mean"):
        validate_card(_card(normalization={"mode": "zscore", "stats": {"channel_names": ["B04"], "mean": [0],
                                                                       "std": [1]}}))
    with pytest.raises(CardError, match="normalization.mode"):
        validate_card(_card(normalization={"mode": "minmax"}))
    with pytest.raises(CardError, match=r"in_chans=4 .* channel_names has 3 .* in_chans must be 3"):
        validate_card(_card(in_chans=4, normalization={"mode": "none"}))
    validate_card(_card(in_chans=6, normalization={"mode": "window", "windows": [[40, 400], [-600, 1500]]}))


def test_same_names_in_other_order_are_reordered():
    assert resolve_channels(_card(), ["B08", "B04", "B03"]) == [1, 2, 0]
    assert resolve_channels(_card(), ["B04", "B03", "B08"]) == [0, 1, 2]


def test_generic_names_match_by_position():
    card = _card(channel_names=["c0", "c1"], in_chans=2)
    assert resolve_channels(card, ["ch0", "ch1"]) == [0, 1]


def test_twelve_bands_into_thirteen_band_encoder_is_refused_with_how_to_map():
    names = [f"B{i:02d}" for i in range(1, 14)]
    card = _card(channel_names=names, in_chans=13)
    with pytest.raises(CardMismatchError) as err:
        resolve_channels(card, names[:12])
    text = str(err.value)
    assert "13 channels" in text and "B13" in text and "--channel-map" in text


def test_extra_data_channels_need_an_explicit_map_and_the_message_gives_it():
    with pytest.raises(CardMismatchError, match="--channel-map 1,2,3"):
        resolve_channels(_card(), ["B02", "B04", "B03", "B08"])
    assert resolve_channels(_card(), ["B02", "B04", "B03", "B08"], channel_map="1,2,3") == [1, 2, 3]


def test_channel_map_by_names_and_indices():
    data = ["red", "green", "nir"]
    assert resolve_channels(_card(), data, channel_map="B04=red,B03=green,B08=nir") == [0, 1, 2]
    assert resolve_channels(_card(), data, channel_map={"B04": "nir", "B03": "green", "B08": "red"}) == [2, 1, 0]
    assert resolve_channels(_card(), data, channel_map=[2, 0, 1]) == [2, 0, 1]
    with pytest.raises(CardMismatchError, match="2 indices"):
        resolve_channels(_card(), data, channel_map=[0, 1])
    with pytest.raises(CardMismatchError, match="out of range"):
        resolve_channels(_card(), data, channel_map=[0, 1, 7])
    with pytest.raises(CardMismatchError, match="not found"):
        resolve_channels(_card(), data, channel_map="B04=blue")
    with pytest.raises(CardMismatchError, match="without data"):
        resolve_channels(_card(), data, channel_map="B04=red")


def test_parse_channel_map_rejects_mixed_text():
    assert parse_channel_map(" 2, 0,1 ") == [2, 0, 1]
    assert parse_channel_map("a=b") == {"a": "b"}
    with pytest.raises(CardMismatchError, match="indices"):
        parse_channel_map("a,b")


def test_spatial_checks():
    with pytest.raises(CardMismatchError, match="3D, the encoder is 2D"):
        check_spatial(_card(), 3)
    assert check_spatial(_card(), 2, [10.5, 10.0], ["m", "m"]) is None  # within 10 %
    assert check_spatial(_card(), 2, [20.0, 20.0], ["m", "m"]) == [2.0, 2.0]
    with pytest.warns(CardMismatchWarning, match="physical scale cannot be checked"):
        assert check_spatial(_card(), 2, [1.0, 1.0], ["px", "px"]) is None


def test_value_range_check_catches_another_scale():
    check_value_range(_card(), [1100.0, 950.0, 2400.0])
    with pytest.raises(CardMismatchError, match="different scale"):
        check_value_range(_card(), [0.1, 0.09, 0.25])
    check_value_range(_card(normalization={"mode": "percentile"}), [0.1, 0.09, 0.25])  # scale-free


def test_readme_mentions_timm_one_liner_only_for_timm_weights():
    card = _card(timm={"model_name": "test_resnet", "kwargs": {}},
                 weights={"file": "model.safetensors", "key_format": "timm"})
    assert "timm.create_model('test_resnet'" in render_readme(card)
    assert "timm.create_model" not in render_readme(_card())


def _card4(**stats):
    """A 4-band DN card like the coffee probe's: means ~900, stds ~500 (std more than half the mean)."""
    names = ["B02", "B03", "B04", "B08"]
    base = {"channel_names": names, "mean": [916.0, 850.0, 700.0, 2400.0], "std": [494.0, 450.0, 520.0, 900.0]}
    base.update(stats)
    return _card(channel_names=names, in_chans=4, normalization={"mode": "zscore", "stats": base})


def test_value_range_refuses_a_shrunk_scale():
    for means in ([0.09, 0.11, 0.10, 0.24], [0.0, 0.0, 0.0, 0.0], [80.0, 70.0, 60.0, 200.0]):
        with pytest.raises(CardMismatchError, match=r"different scale.*B02: data mean [\d.e-]+ \([\d.e-]+x\), "
                                                    r"pretraining mean 916 ± 494"):
            check_value_range(_card4(), means)
    with pytest.raises(CardMismatchError, match="different scale"):  # ten-fold growth, within 6 stds of B08
        check_value_range(_card4(), [900.0, 850.0, 700.0, 24000.0])
    check_value_range(_card4(), [1200.0, 600.0, 400.0, 3000.0])  # same scale, other scenes
    check_value_range(_card4(), [200.0, 150.0, 100.0, 600.0])  # darker scenes, within a factor of 10


def test_value_range_with_percentiles_keeps_zero_centred_channels_open():
    # p01..p99 straddle zero (HU-like, offset data): a mean near zero may be data centred like the archive.
    hu = _card4(mean=[-500.0, -500.0, 0.0, 0.0], std=[500.0, 500.0, 1.0, 1.0],
                p01=[-1000.0, -1000.0, -2.5, -2.5], p99=[1000.0, 1000.0, 2.5, 2.5])
    check_value_range(hu, [40.0, -30.0, 0.05, -0.01])
    with pytest.raises(CardMismatchError, match="B04: data mean 40"):
        check_value_range(hu, [40.0, -30.0, 40.0, 0.0])  # 40 stds off
    # p01 just below zero (noise on dark pixels) still reads as one-signed: a 10000x shrink is refused
    dn = _card4(p01=[-5.0, 0.0, 0.0, 10.0], p99=[2500.0, 2400.0, 2600.0, 5000.0])
    with pytest.raises(CardMismatchError, match="B02: data mean 0.09"):
        check_value_range(dn, [0.09, 0.11, 0.10, 0.24])


def _mismatch(card, data, channel_map=None) -> str:
    with pytest.raises(CardMismatchError) as err:
        resolve_channels(card, data, channel_map=channel_map)
    return str(err.value)


def test_fewer_data_channels_get_a_template_not_a_positional_guess():
    import re

    # a 12-band Sentinel-2 encoder on coffee's 3 bands: no band is named alike, so no map is offered
    # as if it were right (the old message paired B01..B03 with green/red/nir by position and fed
    # NIR to the nine others); the template lists every encoder band and the data's to choose from
    bands = [f"B{i:02d}" for i in range(1, 13)]
    text = _mismatch(_card(channel_names=bands, in_chans=12), ["green", "red", "nir"])
    assert "--channel-map " + ",".join(f"{b}=<?>" for b in bands) + " (ENCODER=DATA names" in text
    assert "data channels: green (0), red (1), nir (2)" in text
    assert "feeding one data channel to several encoder channels runs, but it is not what the encoder saw" in text
    assert "B12=nir" not in text and "2,2" not in text and "positional" not in text
    # the template does not resolve as written: it has to be filled in
    with pytest.raises(CardMismatchError, match="not found"):
        resolve_channels(_card(channel_names=bands, in_chans=12), ["green", "red", "nir"],
                         channel_map=re.search(r"--channel-map (\S+)", text).group(1))
    # 4 bands on 3 (the coffee probe's case): same, one <?> per encoder band
    assert "--channel-map B02=<?>,B03=<?>,B04=<?>,B08=<?> (" in _mismatch(_card4(), ["green", "red", "nir"])
    # 12 of 13 bands: only the missing band needs a pair, and no data band is proposed for it
    names = [f"B{i:02d}" for i in range(1, 14)]
    text = _mismatch(_card(channel_names=names, in_chans=13), names[:12])
    assert "--channel-map B13=<?> (" in text and "B13=B12" not in text
    assert "data channels: B01 (0), B02 (1)" in text and "B12 (11)" in text


def test_more_unnamed_data_channels_get_a_template_too():
    # B08 missing, two data channels it could be: choosing by position would be a coin toss
    text = _mismatch(_card(), ["B02", "B04", "B03", "nir"])
    assert "--channel-map B08=<?> (" in text and "data channels: B02 (0), B04 (1), B03 (2), nir (3)" in text
    assert "B08=B02" not in text and "feeding one data channel" not in text


def test_same_count_other_names_get_a_positional_map_labelled_as_a_guess():
    import re

    text = _mismatch(_card(), ["a", "b", "c"])
    assert "a positional guess: check that each pair is the same band or stain" in text
    maps = re.findall(r"--channel-map ([^\s;)]+)", text)
    assert maps == ["B04=a,B03=b,B08=c", "0,1,2"]
    for suggested in maps:
        assert resolve_channels(_card(), ["a", "b", "c"], channel_map=suggested) == [0, 1, 2]
    # channels the data has by name keep their place; only the unmatched one is paired
    text = _mismatch(_card(), ["nir", "B03", "B04"])
    maps = re.findall(r"--channel-map ([^\s;)]+)", text)
    assert maps == ["B08=nir", "2,1,0"] and "positional guess" in text
    for suggested in maps:
        assert resolve_channels(_card(), ["nir", "B03", "B04"], channel_map=suggested) == [2, 1, 0]


def test_example_channel_map_guesses_only_one_to_one():
    from domainssl.transfer.card import example_channel_map

    assert example_channel_map(["B04", "B03", "B08"], ["a", "b", "c"]) == [0, 1, 2]
    assert example_channel_map(["B04", "B03", "B08"], ["B08", "x", "B04"]) == [2, 1, 0]
    assert example_channel_map(["B02", "B03", "B04", "B08"], ["green", "red", "nir"]) is None  # fewer
    assert example_channel_map(["B04", "B03", "B08"], ["a", "b", "c", "d"]) is None  # which 3 of 4?


def test_a_wrong_map_for_data_with_every_channel_says_which_indices_pick_them():
    text = _mismatch(_card(), ["B02", "B04", "B03", "B08"], channel_map=[0, 1])
    assert text.endswith("The data has every encoder channel by name; --channel-map 1,2,3 picks them in the "
                         "encoder's order (channel_map=[1,2,3] in Python).")


def test_value_range_accepts_a_dim_channel_inside_a_wide_distribution():
    # sparse fluorescence: archive mean 120 +- 400 (p01 0, p99 2000); labeled images with more
    # background average 11, well inside the archive's spread: not another scale
    from domainssl.transfer.card import check_value_range

    card = {"channel_names": ["GFP"], "normalization": {"mode": "zscore", "stats": {
        "channel_names": ["GFP"], "mean": [120.0], "std": [400.0], "p01": [0.0], "p99": [2000.0]}}}
    check_value_range(card, [11.0])
    with pytest.raises(Exception, match="different scale"):
        check_value_range(card, [120.0 * 20])


@pytest.mark.parametrize("card_spacing, card_unit, data_spacing, data_unit, zoom", [
    (0.5, "\u00b5m", 1000.0, "nm", 2.0),        # µ as MICRO SIGN
    (0.5, "\u03bcm", 1000.0, "nm", 2.0),        # µ as GREEK SMALL LETTER MU
    (0.5, "um", 1.0, "micron", 2.0),             # spellings of one unit
    (0.5, "µm", 0.001, "mm", 2.0),
    (1.5, "mm", 3000.0, "µm", 2.0),
    (10.0, "m", 0.02, "km", 2.0),
    (10.0, "metre", 500.0, "cm", 0.5),
    (1.0, "mm", 0.1, "cm", None),               # the same length in other units: no resampling
])
def test_spatial_check_converts_length_units(card_spacing, card_unit, data_spacing, data_unit, zoom):
    import warnings

    card = _card(spacing=[card_spacing] * 2, units=[card_unit] * 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # convertible units are compared, not warned about
        got = check_spatial(card, 2, [data_spacing] * 2, [data_unit] * 2)
    assert got == (None if zoom is None else [zoom, zoom])


def test_spatial_check_converts_each_axis_of_a_volume():
    card = _card(spatial_dims=3, input_size=[16, 16, 16], spacing=[2.0, 0.5, 0.5], units=["mm", "mm", "mm"])
    assert check_spatial(card, 3, [4000.0, 1.0, 1.0], ["µm", "mm", "mm"]) == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("spacing, units, expected", [
    ([1.0, 1.0], ["px", "px"], r"axis 0: data 1 px, encoder 10 m.*physical scale cannot be checked.*"
                               r"Resample the data to the encoder's spacing \(10 m x 10 m\)"),
    ([0.0001, 0.0001], ["deg", "deg"], r"data 0.0001 deg, encoder 10 m.*physical scale cannot be checked.*"
                                       r"gdalwarp -t_srs EPSG:<UTM zone> -tr 10 10"),
    (None, None, r"no physical spacing.*pretrained at 10 m x 10 m.*physical scale cannot be checked"),
    ([10.0, 1.0], ["m", "px"], r"axis 1: data 1 px, encoder 10 m"),
])
def test_spatial_check_warns_when_the_scale_cannot_be_compared(spacing, units, expected):
    with pytest.warns(CardMismatchWarning, match=expected):
        assert check_spatial(_card(), 2, spacing, units) is None


def test_spatial_check_of_a_card_without_physical_scale_is_silent():
    import warnings

    card = _card(spacing=[1.0, 1.0], units=["px", "px"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_spatial(card, 2, [0.5, 0.5], ["mm", "mm"]) is None
        assert check_spatial(card, 2, None, None) is None


@pytest.mark.parametrize("over, numbers", [
    (dict(in_chans=4, channel_names=["a", "b"], normalization={"mode": "none"}),
     r"in_chans=4 .*channel_names has 2 \['a', 'b'\].*in_chans must be 2"),
    (dict(in_chans=6, channel_names=["a", "b"], normalization={"mode": "none"}),  # a multiple, still wrong
     r"in_chans=6 .*channel_names has 2 .*in_chans must be 2"),
    (dict(in_chans=4, channel_names=["CT"], normalization={"mode": "window", "windows": [[40, 400], [0, 2000]]}),
     r"in_chans=4 .*channel_names has 1 .*2 CT window.*in_chans must be 1 x 2 = 2"),
    (dict(in_chans=3, channel_names=["CT"], normalization={"mode": "window"}),  # NormaliseConfig's one window
     r"in_chans=3 .*1 CT window.*in_chans must be 1 x 1 = 1"),
])
def test_in_chans_must_be_channel_names_times_windows(over, numbers):
    with pytest.raises(CardError, match=numbers) as err:
        validate_card(_card(**over))
    assert "export an encoder built with" in str(err.value)
    validate_card(_card(in_chans=2, channel_names=["a", "b"], normalization={"mode": "none"}))
    validate_card(_card(in_chans=2, channel_names=["CT"],
                        normalization={"mode": "window", "windows": [[40, 400], [0, 2000]]}))


def test_card_module_imports_without_torch():
    import subprocess
    import sys

    code = ("import sys; import domainssl.transfer.card as c; "
            "c.check_spatial({'spatial_dims': 2, 'input_size': [8, 8], 'spacing': [0.5, 0.5], "
            "'units': ['µm', 'µm']}, 2, [1000, 1000], ['nm', 'nm']); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
