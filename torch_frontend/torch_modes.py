"""train()/eval() of the optforge.torch classes whose rule has [modes] (Schedule-Free AdamW),
as the reference implementation's torch optimizers: `optimizer.eval()` sets every
parameter to the point to evaluate and save, `optimizer.train()` back to the training
point, `step()` in eval mode raises ValueError. The mode of each parameter group is
`group["train_mode"]` (saved by state_dict); the rewrite is the rule's generated mode
kernel (`Engine.switch`), run on the parameters and states as NumPy/CuPy views (a
DTensor's local shard: the modes are element-wise).
"""
import torch

from ..runtime.modes import GroupModes
from . import tensors
from .optimizer import MASTER, _LOW_PRECISION, _engine_state


class TorchModes(GroupModes):
    """Mixed in before optforge.torch's Optimizer by `classes.torch_class`."""

    @torch.no_grad()
    def _switch(self, mode):
        work = []
        index = -1
        for group in self.param_groups:
            if group["train_mode"] == (mode == "train"):
                index += len(group["params"])
                continue
            engine = self._engine(group)
            names = list(engine.present_states())
            ids, weights, states, params = [], [], [], []
            for param in group["params"]:
                index += 1
                state = self.state.get(param)
                if not state or not all(name in state for name in names):
                    continue     # no state yet: the weight is every point at once
                inner = _engine_state([tensors.view(state[name]) for name in names])
                master = group.get("master_weights", False) and param.dtype in _LOW_PRECISION
                ids.append(index)
                weights.append(tensors.view(param))
                states.append((tensors.view(state[MASTER]), inner) if master else inner)
                params.append(param)
            work.append((group, ids, weights, states, params))
        # every group checked first
        runs = [self._engine(group).switch(mode, ids, weights, states, group.get("master_weights", False))
                for group, ids, weights, states, _ in work]
        for (group, _, _, _, params), run in zip(work, runs):
            run()
            tensors.bump_versions(params)
            group["train_mode"] = mode == "train"

    def step(self, closure=None):
        self._refuse_in_eval()
        return super().step(closure)
