"""Reading a run's CSV log across resumed segments (what the curves plot)."""

from domainssl.train.pictures import read_metrics


def _write(path, rows):
    path.write_text("epoch,step,train/loss,val/knn_acc\n" + "".join(f"0,{s},{l},{k}\n" for s, l, k in rows))


def test_segments_are_joined_and_steps_logged_twice_keep_the_resumed_value(tmp_path):
    # part 1: steps 0-5 logged, but the last checkpoint was at step 3; the resumed run logs
    # steps 4-7 again (metrics.csv). Steps 4 and 5 must come from the resumed run only.
    _write(tmp_path / "metrics.part1.csv", [(0, 1.0, ""), (1, 0.9, ""), (2, 0.8, 0.3), (3, 0.7, ""),
                                             (4, 0.66, ""), (5, 0.65, 0.4)])
    _write(tmp_path / "metrics.csv", [(4, 0.6, ""), (5, 0.5, ""), (6, 0.4, 0.5), (7, 0.3, "")])
    data = read_metrics(tmp_path)
    steps, loss = data["train/loss"]
    assert steps.tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert loss.tolist() == [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
    assert data["val/knn_acc"][0].tolist() == [2, 6] and data["val/knn_acc"][1].tolist() == [0.3, 0.5]
    # a single file reads as before
    assert read_metrics(tmp_path / "metrics.csv")["train/loss"][0].tolist() == [4, 5, 6, 7]


def test_parts_are_read_in_numeric_order(tmp_path):
    _write(tmp_path / "metrics.part2.csv", [(10, 2.0, "")])
    _write(tmp_path / "metrics.part10.csv", [(20, 3.0, "")])
    _write(tmp_path / "metrics.part1.csv", [(0, 1.0, "")])
    _write(tmp_path / "metrics.csv", [(30, 4.0, "")])
    assert read_metrics(tmp_path)["train/loss"][1].tolist() == [1.0, 2.0, 3.0, 4.0]


def test_multispectral_pictures_show_true_colour_where_the_bands_say_which():
    import numpy as np

    from domainssl.train.pictures import _display, display_channels

    s2 = ["B01", "B02", "B03", "B04", "B05", "B08"]
    assert display_channels(s2) == [3, 2, 1]
    assert display_channels(["Red", "Green", "Blue", "NIR"]) == [0, 1, 2]
    assert display_channels(["DAPI", "GFP", "Cy5"]) is None and display_channels(None) is None
    img = np.zeros((6, 4, 4), np.float32)
    img[3] = 1.0                                     # only B04 (red) is bright
    img[3, 0, 0] = 0.0
    shown = _display(img, display_channels(s2))
    assert shown.shape == (4, 4, 3) and shown[1, 1].tolist() == [1.0, 0.0, 0.0]


def _line_colour_pixels(png) -> int:
    """Pixels of matplotlib's first line colour (C0, #1f77b4) in a PNG."""
    import numpy as np
    from matplotlib.image import imread

    rgb = imread(str(png))[..., :3]
    return int((np.abs(rgb - np.array([0x1F, 0x77, 0xB4]) / 255).max(-1) < 0.08).sum())


def test_a_curve_of_one_logged_point_is_drawn(tmp_path):
    # a short run logs one point: drawn as a line alone it left curves.png blank
    from domainssl.train.pictures import plot_curves

    _write(tmp_path / "metrics.csv", [(8, 3.6, "")])
    png = plot_curves(tmp_path, tmp_path / "curves.png")
    assert _line_colour_pixels(png) > 10
    _write(tmp_path / "metrics.csv", [(s, 1.0 / (s + 1), "") for s in range(200)])  # many: a line
    assert _line_colour_pixels(plot_curves(tmp_path, tmp_path / "long.png")) > 10
