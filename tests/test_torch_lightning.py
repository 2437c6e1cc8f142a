"""optforge.torch under PyTorch Lightning's mixed precision with gradient clipping, beside
torch.optim.AdamW in the same Trainer.

Lightning clips gradients only for optimizers that let GradScaler unscale them
(`_step_supports_amp_scaling` unset, torch's contract for every optimizer but fused=True
ones), so `precision="bf16-mixed"` (and "16-mixed", with a GradScaler) with
`gradient_clip_val` must train; with fused=True Lightning refuses clipping for optforge's
optimizers exactly as for torch's fused ones.

Tolerance: float32 parameters, the same autocast forward and backward on both sides and
the same formulas in another order in the optimizer: rtol 1e-5, atol 1e-6 after 8 steps
(~1e-7 in practice).
"""
import logging

import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning", reason="pytorch-lightning is not installed (pip install lightning)")

import optforge.torch as ot  # noqa: E402
from lightning.pytorch.plugins.precision import MixedPrecision  # noqa: E402

CLIP = 0.1


class _Module(L.LightningModule):
    def __init__(self, make):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
        self.make = make
        self.norms = []     # the gradient norm each optimizer step used (after clipping)

    def training_step(self, batch, index):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        opt = self.make(self.parameters())
        # a post hook: under bf16 the gradients are made by the closure the step calls
        opt.register_step_post_hook(lambda o, args, kwargs: self.norms.append(
            float(torch.nn.utils.get_total_norm([p.grad for p in self.parameters()]))))
        return opt


def _train(make, precision, clip=CLIP, steps=8):
    logging.getLogger("lightning").setLevel(logging.ERROR)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, 8, generator=gen)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=16)
    module = _Module(make)
    # the plugin named directly: Trainer(precision="16-mixed") on the CPU falls back to bf16
    trainer = L.Trainer(accelerator="cpu", devices=1, plugins=[MixedPrecision(precision, "cpu")],
                        gradient_clip_val=clip, max_steps=steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, data)
    return module, trainer


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_with_gradient_clipping_trains_as_torch_optim(precision):
    ours, trainer = _train(lambda p: ot.AdamW(p, lr=0.01, weight_decay=0.01), precision)
    theirs, _ = _train(lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.01), precision)
    assert (trainer.precision_plugin.scaler is not None) == (precision == "16-mixed")
    assert ours.norms and ours.norms == pytest.approx(theirs.norms, rel=1e-5)
    assert max(ours.norms) <= CLIP * (1 + 1e-5)     # clipped before every step
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-6)
    start = _Module(None)
    assert not torch.equal(next(ours.parameters()), next(start.parameters()))   # it trained


@pytest.mark.parametrize("cls", [ot.AdamW, torch.optim.AdamW], ids=["optforge", "torch"])
def test_fused_optimizers_refuse_clipping_as_torchs_do(cls):
    """fused=True: the step unscales the gradients itself, so Lightning cannot clip them
    first, for torch's and optforge's optimizers alike."""
    with pytest.raises(RuntimeError, match="does not allow for gradient clipping"):
        _train(lambda p: cls(p, lr=0.01, fused=True), "bf16-mixed")
    module, _ = _train(lambda p: cls(p, lr=0.01, fused=True), "bf16-mixed", clip=None, steps=2)
    assert len(module.norms) == 2
