"""examples/torch_train.py runs: the loss falls and the checkpoint resume ends at the
uninterrupted run's weights (the script checks it and returns 1 otherwise)."""
import importlib.util

import pytest

pytest.importorskip("torch")


def test_example_trains_and_resumes_exactly(repo_root, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("torch_train", repo_root / "examples" / "torch_train.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.main(["--epochs", "4", "--checkpoint", str(tmp_path / "ckpt.pt")]) == 0
    out = capsys.readouterr().out
    losses = [float(line.split("loss ")[1].split()[0]) for line in out.splitlines() if line.startswith("epoch")]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert "resumed run matches the uninterrupted run" in out
