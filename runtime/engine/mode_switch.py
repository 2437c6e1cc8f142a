"""The weight switch of rules with [modes] (Schedule-Free AdamW's train and eval points).

Each mode is an element-wise function of the weight, the states and the hyperparameters
(`MODES` of the generated module). `prepare` checks every array as a step would and
returns the function that rewrites each weight; which parameters are in which mode is the
frontends' (runtime/modes.py, torch_frontend/torch_modes.py).
"""
from ..backends import array_module, quiet
from .layout import low_precision, master_state, state_parts


def prepare(engine, mode, indices, weights, states, multi_precision=False):
    """Check every array (as a step checks them) and return a function that rewrites each
    weight as `mode` defines it from its state. With multi_precision, a float16/bfloat16
    weight's state is (float32 master copy, inner state): the master copy is rewritten and
    rounded into the weight."""
    meta = engine.module.MODES[mode]
    masters, inner = [], []
    for index, weight, state in zip(indices, weights, states):
        master = None
        if multi_precision and low_precision(weight):
            master, state = master_state(index, weight, state)
        masters.append(master)
        inner.append(state)
    targets = [w if m is None else m for w, m in zip(weights, masters)]
    engine.check(indices, targets, targets, inner)      # the weights stand in for the gradients
    scalars = meta["host"](**engine.hyperparameters)
    arrays_of = [n for n in meta["states"] if not engine.states[n].host_scalar]

    def run():
        for weight, master, target, state in zip(weights, masters, targets, inner):
            present = engine.present_states(target)
            parts = dict(zip(present, state_parts(state, len(present))))
            arrays = [parts[name] for name in arrays_of]
            xp = array_module(target)
            with quiet(xp):
                if target.ndim == 0:   # NumPy makes 0-d temporaries scalars: run on 1-element views
                    target = target.reshape(1)
                    arrays = [a if engine.states[n].shape == "scalar" else a.reshape(1)
                              for n, a in zip(arrays_of, arrays)]
                meta["kernel"](xp, target, None, *arrays, **scalars)
                if master is not None:
                    xp.copyto(weight, master, casting="same_kind")
    return run
