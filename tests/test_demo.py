"""The main job: every registered optimizer reduces the loss of the demo model."""
import io

from optforge import demo
from optforge.runtime import registry


def test_demo_every_optimizer_reduces_the_loss():
    out = io.StringIO()
    assert demo.run(steps=150, seed=3, out=out) == 0, out.getvalue()
    text = out.getvalue()
    for name in registry.names():
        assert f"\n{name} " in text
    assert f"all {len(registry.names())} optimizers reduced the loss" in text


def test_demo_fails_when_an_optimizer_diverges(monkeypatch):
    monkeypatch.setitem(demo.SETTINGS, "sgd", dict(learning_rate=50.0, momentum=0.99))
    out = io.StringIO()
    assert demo.run(steps=100, seed=0, out=out) == 1
    assert "FAILED: sgd" in out.getvalue()
