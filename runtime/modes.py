"""train()/eval(): the weight switch of rules with [modes] (Schedule-Free AdamW).

A rule with modes keeps, between steps, two points per parameter: the one steps run on
("train": Schedule-Free's y) and the one to evaluate ("eval": its x). Switching rewrites
every weight in place with the mode's generated kernel (`MODES` of the NumPy module: an
element-wise function of the weight, the states and the hyperparameters); a step in eval
mode raises ValueError before anything changes. Switching to the current mode does
nothing, so each switch is applied once.

Each API family keeps the mode where its users look for it: the MXNet-style optimizer
per parameter index (it never holds the weights: `opt.eval(indices, weights, states)` as
`update` takes them, `Updater.eval(weights)` with the states it holds), the params-style
optimizer per parameter group (`group["train_mode"]`, as the reference implementation's
torch optimizers; saved in `state_dict`). optforge.torch's part is in
`torch_frontend/torch_modes.py`.
"""
from .mxnet_base import as_lists

EVAL_MODE_MESSAGE = ("{name} is in eval mode: call train() before step() (eval() set the weights to the "
                     "point to evaluate; steps run on the training point)")


class MXNetModes:
    """train()/eval() of an MXNet-style optimizer whose rule has [modes] (mixed in before
    SpecOptimizer). The mode is kept per parameter index; a call takes the parameters as
    `update` does (an index, weight and state, or lists of them) and rewrites those not
    already in that mode. A step of a parameter in eval mode raises ValueError."""

    def mode(self, index):
        """"train" or "eval": the mode of this parameter index (new ones: "train")."""
        return "eval" if index in self._eval_indices() else "train"

    def train(self, index, weight, state):
        """Weights back to the training point (Schedule-Free: y = beta1 * x + (1 - beta1) * z)."""
        self._switch("train", index, weight, state)

    def eval(self, index, weight, state):
        """Weights to the point to evaluate and save (Schedule-Free: x); steps are refused
        until train()."""
        self._switch("eval", index, weight, state)

    def _eval_indices(self):
        found = self.__dict__.get("_eval_set")
        if found is None:
            found = self.__dict__["_eval_set"] = set()
        return found

    def _switch(self, mode, index, weight, state):
        indices, weights, states = as_lists(f"{mode}()", index, weights=weight, states=state)
        todo = [k for k, i in enumerate(indices) if self.mode(i) != mode]
        self.engine.switch(mode, [indices[k] for k in todo], [weights[k] for k in todo],
                           [states[k] for k in todo], self.multi_precision)()
        self._set_modes([indices[k] for k in todo], mode)

    def _set_modes(self, indices, mode):
        modes = self._eval_indices()
        for index in indices:
            (modes.add if mode == "eval" else modes.discard)(index)

    def _refuse_in_eval(self, indices):
        in_eval = [i for i in indices if i in self._eval_indices()] if self._eval_indices() else []
        if in_eval:
            raise ValueError(EVAL_MODE_MESSAGE.format(name=type(self).__name__)
                             + f" (parameters in eval mode: {in_eval[:8]!r})")

    def _count_and_plan(self, indices, plan):
        self._refuse_in_eval(indices)    # every step (kept, full, multi-precision) is counted here
        return super()._count_and_plan(indices, plan)

    def config(self):
        config = super().config()
        config["modes"] = {"eval": sorted(self._eval_indices(), key=repr)}
        return config

    def _restore_modes(self, saved):
        if not isinstance(saved, dict) or set(saved) != {"eval"} or not isinstance(saved["eval"], list) \
                or not all(isinstance(i, (int, str)) and not isinstance(i, bool) for i in saved["eval"]):
            raise ValueError("saved modes must be {'eval': [parameter indices]}")
        modes = self._eval_indices()
        modes.clear()
        modes.update(saved["eval"])


class GroupModes:
    """train()/eval() per parameter group, shared by the params-style API and optforge.torch:
    the mode of each group is `group["train_mode"]` (True after construction; saved by
    state_dict, as the reference implementation does). `_switch(mode)` is the family's."""

    def add_param_group(self, group):
        super().add_param_group(group)
        others = self.param_groups[:-1]
        self.param_groups[-1]["train_mode"] = others[0]["train_mode"] if others else True

    def train(self):
        """Every parameter back to the training point; steps run again."""
        self._switch("train")

    def eval(self):
        """Every parameter to the point to evaluate and save; steps raise until train()."""
        self._switch("eval")

    def _refuse_in_eval(self):
        if not all(group.get("train_mode", True) for group in self.param_groups):
            raise ValueError(EVAL_MODE_MESSAGE.format(name=type(self).__name__))

    def load_state_dict(self, state_dict):
        groups = state_dict.get("param_groups") if isinstance(state_dict, dict) else None
        for k, saved in enumerate(groups if isinstance(groups, (list, tuple)) else ()):
            if isinstance(saved, dict) and not isinstance(saved.get("train_mode", True), bool):
                raise ValueError(f"parameter group {k} of the loaded state dict has train_mode "
                                 f"{saved['train_mode']!r}, not True or False")
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            group.setdefault("train_mode", True)


class ParamsModes(GroupModes):
    """train()/eval() of a params-style optimizer whose rule has [modes] (mixed in before
    params_api.Optimizer)."""

    def _switch(self, mode):
        from . import array_views
        work = []
        for group_index, group in enumerate(self.param_groups):
            if group["train_mode"] == (mode == "train"):
                continue
            ids = [pid for pid in self._ids(group_index) if pid in self.state]
            work.append((group, self._engine(group_index), ids))
        runs = [engine.switch(mode, ids, [array_views.view(self._params[pid]) for pid in ids],
                              [self.state[pid] for pid in ids])
                for group, engine, ids in work]     # every group is checked before any weight changes
        for (group, _, _), run in zip(work, runs):
            run()
            group["train_mode"] = mode == "train"

    def step(self, grads=None, closure=None):
        self._refuse_in_eval()
        return super().step(grads, closure)
