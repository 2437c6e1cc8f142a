"""Learning-rate schedulers with MXNet's exact boundaries (`mxnet.lr_scheduler`).

A scheduler is called as `scheduler(num_update)` by the optimizer on every step
(the first step of a fresh optimizer sees num_update = begin_num_update + 1).
Schedulers are stateful and assume non-decreasing num_update, as MXNet's are.
Where MXNet's docstrings and code disagree, these follow the code:

- FactorScheduler decays when num_update > count + step: the first decay is at
  step + 1, i.e. lr(n) = max(base_lr * factor**(ceil(n/step) - 1), stop_factor_lr).
- MultiFactorScheduler decays once num_update > step[k] (strictly greater).
- Poly/Cosine keep the last computed value after max_update, decay from the
  base_lr given at construction (an optimizer's learning_rate only replaces
  `base_lr`), and warm up towards that construction-time base_lr.
"""
import logging
import math

_log = logging.getLogger(__name__)


class LRScheduler:
    """Base class: warmup from warmup_begin_lr to base_lr over warmup_steps updates.

    Parameters
    ----------
    base_lr : float, default 0.01
    warmup_steps : int, default 0
    warmup_begin_lr : float, default 0
        Must not exceed base_lr.
    warmup_mode : {'linear', 'constant'}, default 'linear'
    """

    def __init__(self, base_lr=0.01, warmup_steps=0, warmup_begin_lr=0, warmup_mode="linear"):
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int):
            raise ValueError(f"warmup_steps must be an int, got {warmup_steps!r}")
        if warmup_steps < 0:
            raise ValueError("Warmup steps has to be positive or 0")
        if warmup_begin_lr > base_lr:
            raise ValueError("Base lr has to be higher than warmup_begin_lr")
        if warmup_mode not in ("linear", "constant"):
            raise ValueError("Supports only linear and constant modes of warmup")
        self.base_lr = base_lr
        self.warmup_steps = warmup_steps
        self.warmup_final_lr = base_lr
        self.warmup_begin_lr = warmup_begin_lr
        self.warmup_mode = warmup_mode

    def get_warmup_lr(self, num_update):
        if not num_update < self.warmup_steps:
            raise ValueError(f"num_update {num_update} is past the warmup ({self.warmup_steps} steps)")
        if self.warmup_mode == "linear":
            increase = (self.warmup_final_lr - self.warmup_begin_lr) \
                * float(num_update) / float(self.warmup_steps)
            return self.warmup_begin_lr + increase
        return self.warmup_begin_lr

    def __call__(self, num_update):
        raise NotImplementedError("LRScheduler subclasses implement __call__(num_update)")

    # pickle-free saving with the optimizer (Updater.get_states(dump_optimizer=True))
    def config(self):
        return {"type": type(self).__name__, "state": dict(vars(self))}

    @staticmethod
    def from_config(config):
        """The scheduler `config()` saved; ValueError for an unknown type, a state that is
        not a dict of named values, or a non-finite number."""
        from .validation import entries
        entries("saved lr_scheduler", config, ("type", "state"))
        cls = SCHEDULERS.get(config["type"]) if isinstance(config["type"], str) else None
        if cls is None:
            raise ValueError(f"unknown lr_scheduler type {config['type']!r}")
        state = config["state"]
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise ValueError("saved lr_scheduler state must be a dict of named values")
        for name, value in state.items():
            values = value if isinstance(value, list) else [value]
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                raise ValueError(f"saved lr_scheduler {name} must be finite, got {value!r}")
        obj = cls.__new__(cls)
        obj.__dict__.update(state)
        return obj


def _check_factor(factor):
    if factor > 1.0:
        raise ValueError("Factor must be no more than 1 to make lr reduce")


class FactorScheduler(LRScheduler):
    """Multiply the learning rate by `factor` every `step` updates (first decay at step + 1),
    never going below `stop_factor_lr`."""

    def __init__(self, step, factor=1, stop_factor_lr=1e-8, base_lr=0.01, warmup_steps=0,
                 warmup_begin_lr=0, warmup_mode="linear"):
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        if step < 1:
            raise ValueError("Schedule step must be greater or equal than 1 round")
        _check_factor(factor)
        self.step = step
        self.factor = factor
        self.stop_factor_lr = stop_factor_lr
        self.count = 0

    def __call__(self, num_update):
        if num_update < self.warmup_steps:
            return self.get_warmup_lr(num_update)
        while num_update > self.count + self.step:
            self.count += self.step
            self.base_lr *= self.factor
            if self.base_lr < self.stop_factor_lr:
                self.base_lr = self.stop_factor_lr
                _log.info("Update[%d]: now learning rate arrived at %0.5e, will not change in the future",
                          num_update, self.base_lr)
            else:
                _log.info("Update[%d]: Change learning rate to %0.5e", num_update, self.base_lr)
        return self.base_lr


class MultiFactorScheduler(LRScheduler):
    """Multiply the learning rate by `factor` once num_update passes each of `step` (a list of
    strictly increasing positive ints)."""

    def __init__(self, step, factor=1, base_lr=0.01, warmup_steps=0, warmup_begin_lr=0,
                 warmup_mode="linear"):
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        if not isinstance(step, list) or not step:
            raise ValueError("step must be a non-empty list of increasing integers")
        for i, value in enumerate(step):
            if i != 0 and step[i] <= step[i - 1]:
                raise ValueError("Schedule step must be an increasing integer list")
            if value < 1:
                raise ValueError("Schedule step must be greater or equal than 1 round")
        _check_factor(factor)
        self.step = list(step)
        self.cur_step_ind = 0
        self.factor = factor
        self.count = 0

    def __call__(self, num_update):
        if num_update < self.warmup_steps:
            return self.get_warmup_lr(num_update)
        while self.cur_step_ind <= len(self.step) - 1:
            if num_update > self.step[self.cur_step_ind]:
                self.count = self.step[self.cur_step_ind]
                self.cur_step_ind += 1
                self.base_lr *= self.factor
                _log.info("Update[%d]: Change learning rate to %0.5e", num_update, self.base_lr)
            else:
                return self.base_lr
        return self.base_lr


class _Decay(LRScheduler):
    def __init__(self, max_update, base_lr, final_lr, warmup_steps, warmup_begin_lr, warmup_mode):
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        if isinstance(max_update, bool) or not isinstance(max_update, int):
            raise ValueError(f"max_update must be an int, got {max_update!r}")
        if max_update < 1:
            raise ValueError("maximum number of updates must be strictly positive")
        if max_update <= warmup_steps:
            raise ValueError(f"max_update ({max_update}) must be greater than warmup_steps ({warmup_steps})")
        self.base_lr_orig = self.base_lr
        self.max_update = max_update
        self.final_lr = final_lr
        self.max_steps = self.max_update - self.warmup_steps

    def __call__(self, num_update):
        if num_update < self.warmup_steps:
            return self.get_warmup_lr(num_update)
        if num_update <= self.max_update:
            self.base_lr = self.final_lr + (self.base_lr_orig - self.final_lr) \
                * self._shape(num_update - self.warmup_steps)
        return self.base_lr


class PolyScheduler(_Decay):
    """lr = final_lr + (base_lr - final_lr) * (1 - (n - warmup_steps)/(max_update - warmup_steps))**pwr."""

    def __init__(self, max_update, base_lr=0.01, pwr=2, final_lr=0, warmup_steps=0,
                 warmup_begin_lr=0, warmup_mode="linear"):
        super().__init__(max_update, base_lr, final_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        self.power = pwr

    def _shape(self, done):
        return pow(1 - float(done) / float(self.max_steps), self.power)


class CosineScheduler(_Decay):
    """lr = final_lr + (base_lr - final_lr) * (1 + cos(pi * (n - warmup_steps)/(max_update - warmup_steps)))/2."""

    def __init__(self, max_update, base_lr=0.01, final_lr=0, warmup_steps=0, warmup_begin_lr=0,
                 warmup_mode="linear"):
        super().__init__(max_update, base_lr, final_lr, warmup_steps, warmup_begin_lr, warmup_mode)

    def _shape(self, done):
        return (1 + math.cos(math.pi * done / self.max_steps)) / 2


SCHEDULERS = {cls.__name__: cls for cls in
              (FactorScheduler, MultiFactorScheduler, PolyScheduler, CosineScheduler)}
