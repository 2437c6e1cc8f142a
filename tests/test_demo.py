"""The main job: every registered optimizer reduces the loss of the demo model."""
import io

from optforge import demo
from optforge.runtime import registry


def test_demo_every_optimizer_reduces_the_loss():
    out = io.StringIO()
    assert demo.run(steps=150, seed=3, out=out) == 0, out.getvalue()
    text = out.getvalue()
    for flavor, name in registry.registered():
        assert any(line.split()[:2] == [name, flavor] for line in text.splitlines()), (flavor, name)
    assert f"all {len(registry.registered())} optimizers reduced the loss" in text


def test_demo_fails_when_an_optimizer_diverges(monkeypatch):
    monkeypatch.setitem(demo.SETTINGS, "sgd", dict(learning_rate=50.0, momentum=0.99))
    out = io.StringIO()
    assert demo.run(steps=100, seed=0, out=out) == 1
    assert "FAILED: sgd (mxnet2)" in out.getvalue()
