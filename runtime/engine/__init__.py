"""The engine: one rule's step over lists of arrays, knowing nothing of any API's conventions.

An `Engine` is built from a generated module and validated hyperparameter values. It knows
the rule's state layout (`states`, `present_states`, `create_state`, `check`), plans a step's
host scalars from what a frontend gives it (`StepInputs`: each parameter's update count t,
learning rate, weight decay and name, and the shared rescale_grad and clip_gradient), and
runs the generated code on whatever backend the arrays choose (NumPy, the native CPU
kernels, CuPy and the CUDA kernels). A step goes in two halves, so that a frontend can
check and plan every batch of a call before any array changes:

    launch = engine.launch(indices, weights, grads, states, fused=True)   # arrays checked
    launch.plan(inputs)    # host scalars, kernels compiled: raises with nothing changed
    launch.run()           # the kernels

Update counts, learning-rate schedules and multipliers, parameter groups, hooks and state
dicts are the frontends' (frontends/: MXNet style, params style; optforge.torch).
`KeptLaunches` (kept.py) lets an update with the arrays of an earlier native one skip the
checks and the table it already proved.
"""
from .engine import Engine, Launch
from .layout import (PreconditionError, StateMeta, StepError, low_precision, master_state, reads_shape, round_into,
                     shape_inputs, state_dtype, state_parts, state_shape)
from .plans import Plan, StepInputs

__all__ = ["Engine", "Launch", "Plan", "PreconditionError", "StateMeta", "StepError", "StepInputs",
           "low_precision", "master_state", "reads_shape", "round_into", "shape_inputs", "state_dtype",
           "state_parts", "state_shape"]
