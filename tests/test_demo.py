"""The main job: every registered optimizer trains the demo model well enough for the pass
rule of its family (demo.PASS_RULES); the table and the loss-curve plot."""
import io
import struct

import numpy as np
import pytest

from optforge import demo
from optforge.runtime import registry


def test_demo_every_optimizer_passes_the_rule_of_its_family():
    out = io.StringIO()
    assert demo.run(steps=150, seed=3, out=out) == 0, out.getvalue()
    text = out.getvalue()
    rows = {tuple(line.split()[:2]): line.split() for line in text.splitlines() if len(line.split()) == 7}
    for flavor, name in registry.registered():
        row = rows[(name, flavor)]
        assert row[2] == demo.family(name)
        early, final, accuracy, rate = float(row[3]), float(row[4]), float(row[5].rstrip("%")), float(row[6])
        assert 0 < final < early and 0 <= accuracy <= 100 and rate > 0
    assert "loss@15" in text and "held-out acc" in text
    assert f"all {len(registry.registered())} optimizers passed the rule of their family" in text


def test_demo_fails_when_an_optimizer_diverges(monkeypatch):
    _only(monkeypatch, ("mxnet2", "adam"), ("mxnet2", "sgd"))
    monkeypatch.setitem(demo.SETTINGS, "sgd", dict(learning_rate=50.0, momentum=0.99))
    out = io.StringIO()
    assert demo.run(steps=100, seed=0, out=out) == 1
    assert "FAILED: sgd (mxnet2) missed the pass rule of their family" in out.getvalue()


def _only(monkeypatch, *keys):
    everything = registry.registered()
    monkeypatch.setattr(registry, "registered", lambda flavor=None: {k: everything[k] for k in keys})


def test_lowering_the_loss_a_little_is_not_enough(monkeypatch):
    """Plain SGD at a learning rate 100 times too small lowers the loss, but not by the
    family's fractions: the rule is stricter than 'the loss went down'."""
    _only(monkeypatch, ("mxnet2", "sgd"))
    monkeypatch.setitem(demo.SETTINGS, "sgd", dict(learning_rate=0.001))
    out = io.StringIO()
    assert demo.run(steps=100, seed=0, out=out) == 1
    row = next(line for line in out.getvalue().splitlines() if line.startswith("sgd "))
    initial = float(out.getvalue().split("initial training loss ")[1].split()[0])
    assert float(row.split()[4]) < initial          # it did lower the loss
    assert "final loss above 0.15 x initial" in row and "FAILED: sgd (mxnet2)" in out.getvalue()


def test_held_out_samples_are_never_trained_on():
    x, labels = demo.make_data(0)
    (x_train, y_train), (x_held, y_held) = demo.split(x, labels)
    assert len(x_held) == len(y_held) == demo.HELD_OUT and len(x_train) + len(x_held) == len(x)
    np.testing.assert_array_equal(np.concatenate([x_train, x_held]), x)


def _png_size(data):
    """(width, height) from a PNG's signature and IHDR chunk (the PNG specification, 5.2 and 11.2.2)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


def test_plot_writes_a_png_of_the_loss_curves(monkeypatch, tmp_path):
    from matplotlib import image
    _only(monkeypatch, ("mxnet2", "adam"), ("mxnet2", "sgd"), ("mxnet2", "sgld"))
    path = tmp_path / "curves.png"
    out = io.StringIO()
    assert demo.run(steps=30, seed=0, out=out, plot=path) in (0, 1)
    assert f"wrote the loss curves to {path}" in out.getvalue()
    width, height = demo.PLOT_SIZE[0] * demo.PLOT_DPI, demo.PLOT_SIZE[1] * demo.PLOT_DPI
    assert _png_size(path.read_bytes()) == (width, height)
    pixels = image.imread(path)                      # decodes the whole image
    assert pixels.shape[:2] == (height, width)
    assert len(np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0)) > 10   # curves drawn, not a blank canvas


def test_plot_without_matplotlib_fails_before_training(monkeypatch, tmp_path):
    import builtins
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.split(".")[0] == "matplotlib":
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    monkeypatch.setattr(demo, "train", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    out = io.StringIO()
    with pytest.raises(SystemExit, match=r"needs matplotlib: pip install 'optforge\[plot\]'"):
        demo.run(steps=10, out=out, plot=tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_matrix_rules_pass_and_muon_trains_the_weight_matrices_only(monkeypatch):
    _only(monkeypatch, ("torch", "muon"), ("torch", "adafactor"), ("mxnet2", "adafactor"))
    out = io.StringIO()
    assert demo.run(steps=150, seed=3, out=out) == 0, out.getvalue()
    assert "muon: 2-D parameters only (as torch.optim.Muon): trains the two weight matrices" in out.getvalue()
    params = demo.init_params(0)
    assert demo.trained_params(registry.create("muon", flavor="torch"), params) == [0, 2]
    assert demo.trained_params(registry.create("adafactor", flavor="torch"), params) == [0, 1, 2, 3]
