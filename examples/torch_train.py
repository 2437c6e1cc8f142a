"""Train a small model with optforge.torch.AdamW, a learning-rate scheduler, GradScaler and
a checkpoint resume.

    python examples/torch_train.py [--epochs 10] [--checkpoint /tmp/optforge_ckpt.pt]

Trains for `epochs`, saving a checkpoint (model, optimizer, scheduler, scaler) halfway;
then starts a fresh model and optimizer from that checkpoint, trains the second half again
and checks that it ends at the same weights as the uninterrupted run.
"""
import argparse
import os
import tempfile

import torch

import optforge.torch


def data(n=512, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=gen)
    y = torch.sin(x[:, :4].sum(dim=1, keepdim=True)) + 0.05 * torch.randn(n, 1, generator=gen)
    return x, y


def make(total_steps):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.GELU(), torch.nn.Linear(64, 1))
    opt = optforge.torch.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.99), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    # GradScaler guards float16 gradients against underflow; on the CPU it also skips steps
    # whose gradients are not finite
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    return model, opt, sched, scaler


def epoch(model, opt, sched, scaler, x, y, batch=64):
    total = 0.0
    for start in range(0, x.shape[0], batch):
        xb, yb = x[start:start + batch], y[start:start + batch]
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = torch.nn.functional.mse_loss(model(xb).float(), yb)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        sched.step()
        total += loss.item() * xb.shape[0]
    return total / x.shape[0]


def save(path, model, opt, sched, scaler, epochs_done):
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict(), "epoch": epochs_done}, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--checkpoint", default=os.path.join(tempfile.gettempdir(), "optforge_torch_ckpt.pt"))
    args = parser.parse_args(argv)
    x, y = data()
    steps = args.epochs * ((x.shape[0] + 63) // 64)
    half = args.epochs // 2

    model, opt, sched, scaler = make(steps)
    for e in range(args.epochs):
        loss = epoch(model, opt, sched, scaler, x, y)
        print(f"epoch {e + 1}: loss {loss:.4f}  lr {sched.get_last_lr()[0]:.2e}")
        if e + 1 == half:
            save(args.checkpoint, model, opt, sched, scaler, half)

    # resume: everything from the checkpoint (tensors only: weights_only=True loads it)
    ckpt = torch.load(args.checkpoint, weights_only=True)
    model2, opt2, sched2, scaler2 = make(steps)
    model2.load_state_dict(ckpt["model"])
    opt2.load_state_dict(ckpt["optimizer"])
    sched2.load_state_dict(ckpt["scheduler"])
    scaler2.load_state_dict(ckpt["scaler"])
    for e in range(ckpt["epoch"], args.epochs):
        loss = epoch(model2, opt2, sched2, scaler2, x, y)
        print(f"resumed epoch {e + 1}: loss {loss:.4f}")
    same = all(torch.equal(a, b) for a, b in zip(model.parameters(), model2.parameters()))
    print("resumed run matches the uninterrupted run" if same else "resumed run DIFFERS")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
