"""Type stubs of the mxnet-style optimizer classes: optforge.Adam(learning_rate=0.001, beta1=0.9), optforge.optimizer.Adam(...).

Generated from specs/ by `optforge generate`; do not edit. Imported for type checkers only.
"""
from typing import Any, Callable, Iterable, Literal

from ..runtime.spec_optimizer import SpecOptimizer

__all__ = [
    'ADOPT',
    'AMSGrad',
    'AdEMAMix',
    'AdaBelief',
    'AdaBound',
    'AdaDelta',
    'AdaGrad',
    'Adafactor',
    'Adam',
    'AdamW',
    'Adamax',
    'Adan',
    'AggMo',
    'CAME',
    'CAdamW',
    'ClippedAdamW',
    'DAdaptAdam',
    'DCASGD',
    'FTML',
    'Ftrl',
    'GroupAdaGrad',
    'Kron',
    'LAMB',
    'LANS',
    'LARS',
    'Lion',
    'NAG',
    'Nadam',
    'NovoGrad',
    'Prodigy',
    'RMSProp',
    'Rprop',
    'SGD',
    'SGLD',
    'SM3',
    'SOAP',
    'ScheduleFreeAdamW',
    'Shampoo',
    'Signum',
    'Test',
    'Yogi',
]


class ADOPT(SpecOptimizer):
    'ADOPT: the gradient normalised by the previous second moment, then averaged; converges with any beta2 (specs/adopt.toml).'
    beta1: float
    beta2: float
    epsilon: float
    use_clipping: bool
    nesterov: bool

    def __init__(
        self,
        learning_rate: float | None = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.9999,
        epsilon: float = 1e-06,
        use_clipping: bool = True,
        nesterov: bool = False,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class AMSGrad(SpecOptimizer):
    'AMSGrad: Adam normalised by the maximum of past second moments (specs/amsgrad.toml).'
    beta1: float
    beta2: float
    epsilon: float
    maximize: bool

    def __init__(
        self,
        learning_rate: float | None = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-08,
        maximize: bool = False,
        lazy_update: bool = False,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class AdEMAMix(SpecOptimizer):
    'AdEMAMix: Adam with a second, slow momentum mixed into the numerator, with warmups of alpha and beta3 (specs/ademamix.toml).'
    beta1: float
    beta2: float
    beta3: float
    alpha: float
    epsilon: float
    warmup: float | None

    def __init__(
        self,
        learning_rate: float | None = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        beta3: float = 0.9999,
        alpha: float = 5.0,
        epsilon: float = 1e-08,
        warmup: float | None = None,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class AdaBelief(SpecOptimizer):
    'AdaBelief: adapting stepsizes by the belief in observed gradients (specs/adabelief.toml).'
    beta1: float
    beta2: float
    epsilon: float
    correct_bias: bool

    def __init__(
        self,
        learning_rate: float | None = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-06,
        correct_bias: bool = True,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class AdaBound(SpecOptimizer):
    "AdaBound: Adam whose per-element step size is clipped into bounds that converge to SGD's learning rate (specs/adabound.toml)."
    beta1: float
    beta2: float
    final_lr: float
    gamma: float
    epsilon: float
    amsbound: bool

    def __init__(
        self,
        learning_rate: float | None = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        final_lr: float = 0.1,
        gamma: float = 0.001,
        epsilon: float = 1e-08,
        amsbound: bool = False,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class AdaDelta(SpecOptimizer):
    'AdaDelta: an adaptive learning rate method (MXNet 2.0: the learning rate scales the step) (specs/adadelta.toml).'
    rho: float
    epsilon: float

    def __init__(
        self,
        learning_rate: float | None = 1.0,
        rho: float = 0.9,
        epsilon: float = 1e-06,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class AdaGrad(SpecOptimizer):
    'AdaGrad: per-element learning rates from the sum of squared gradients (MXNet 2.0) (specs/adagrad.toml).'
    epsilon: float

    def __init__(
        self,
        learning_rate: float | None = 0.01,
        epsilon: float = 1e-06,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class Adafactor(SpecOptimizer):
    "Adafactor (the paper's algorithm): factored second moments, relative step size and parameter scaling (specs/adafactor.toml)."
    epsilon1: float
    epsilon2: float
    d: float
    decay_rate: float
    beta1: float | None
    relative_step: bool
    scale_parameter: bool
    warmup_init: bool

    def __init__(
        self,
        learning_rate: float | None = 0.001,
        epsilon1: float = 1e-30,
        epsilon2: float = 0.001,
        d: float = 1.0,
        decay_rate: float = -0.8,
        beta1: float | None = None,
        relative_step: bool = True,
        scale_parameter: bool = True,
        warmup_init: bool = False,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class Adam(SpecOptimizer):
    'Adam: A Method for Stochastic Optimization (specs/adam.toml).'
    beta1: float
    beta2: float
    epsilon: float

    def __init__(
        self,
        learning_rate: float | None = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-08,
        lazy_update: bool = False,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class AdamW(SpecOptimizer):
    'AdamW: Adam with decoupled weight decay (MXNet 2.0 class) (specs/adamw.toml).'
    beta1: float
    beta2: float
    epsilon: float
    correct_bias: bool

    def __init__(
        self,
        learning_rate: float | None = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-06,
        correct_bias: bool = True,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class Adamax(SpecOptimizer):
    'Adamax: Adam with the infinity norm (MXNet 2.0, with epsilon) (specs/adamax.toml).'
    beta1: float
    beta2: float
    epsilon: float

    def __init__(
        self,
        learning_rate: float | None = 0.002,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-08,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class Adan(SpecOptimizer):
    'Adan: adaptive Nesterov momentum from averages of the gradient, its difference and a corrected square (specs/adan.toml).'
    beta1: float
    beta2: float
    beta3: float
    epsilon: float
    maximize: bool

    def __init__(
        self,
        learning_rate: float | None = 0.001,
        beta1: float = 0.98,
        beta2: float = 0.92,
        beta3: float = 0.99,
        epsilon: float = 1e-08,
        maximize: bool = False,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class AggMo(SpecOptimizer):
    'Aggregated momentum: the mean of several heavy-ball velocities, each with its own damping (specs/aggmo.toml).'
    betas: tuple[float, float, float]

    def __init__(
        self,
        learning_rate: float | None = 0.001,
        betas: tuple[float, float, float] = (0.0, 0.9, 0.99),
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class CAME(SpecOptimizer):
    "CAME: Adafactor's factored second moment with a first moment whose step is scaled by a factored confidence (instability) estimate (specs/came.toml)."
    beta1: float
    beta2: float
    beta3: float
    epsilon1: float
    epsilon2: float
    clip_threshold: float

    def __init__(
        self,
        learning_rate: float | None = 0.0002,
        beta1: float = 0.9,
        beta2: float = 0.999,
        beta3: float = 0.9999,
        epsilon1: float = 1e-30,
        epsilon2: float = 1e-16,
        clip_threshold: float = 1.0,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class CAdamW(SpecOptimizer):
    "Cautious AdamW: the Adam step only where it agrees in sign with the gradient, rescaled by the mask's size (specs/cadamw.toml)."
    beta1: float
    beta2: float
    epsilon: float
    mask_epsilon: float

    def __init__(
        self,
        learning_rate: float | None = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-08,
        mask_epsilon: float = 1.0,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class ClippedAdamW(SpecOptimizer):
    'AdamW (torch.optim.AdamW) with the gradients of each param group clipped to a global L2 norm, in the step (specs/clippedadamw.toml).'
    beta1: float
    beta2: float
    epsilon: float
    amsgrad: bool
    max_norm: float

    def __init__(
        self,
        learning_rate: float | None = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-08,
        amsgrad: bool = False,
        max_norm: float = 1.0,
        wd: float = 0.01,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class DAdaptAdam(SpecOptimizer):
    'D-Adaptation Adam: Adam whose step size d is estimated from the whole param group, with no learning rate to tune (specs/dadaptadam.toml).'
    beta1: float
    beta2: float
    epsilon: float
    d0: float
    growth_rate: float
    layer_scale: float
    decouple: bool
    use_bias_correction: bool

    def __init__(
        self,
        learning_rate: float | None = 1.0,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-08,
        d0: float = 1e-06,
        growth_rate: float = ...,
        layer_scale: float = 1.0,
        decouple: bool = False,
        use_bias_correction: bool = False,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class DCASGD(SpecOptimizer):
    'DC-ASGD: SGD with delay compensation for asynchronous training (specs/dcasgd.toml).'
    momentum: float
    lamda: float

    def __init__(
        self,
        learning_rate: float | None = 0.1,
        momentum: float = 0.0,
        lamda: float = 0.04,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class FTML(SpecOptimizer):
    'FTML: Follow the Moving Leader (specs/ftml.toml).'
    beta1: float
    beta2: float
    epsilon: float

    def __init__(
        self,
        learning_rate: float | None = 0.0025,
        beta1: float = 0.6,
        beta2: float = 0.999,
        epsilon: float = 1e-08,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class Ftrl(SpecOptimizer):
    'FTRL-Proximal: follow the regularized leader with L1 and L2 regularization (specs/ftrl.toml).'
    lamda1: float
    beta: float

    def __init__(
        self,
        learning_rate: float | None = 0.1,
        lamda1: float = 0.01,
        beta: float = 1.0,
        lazy_update: bool = False,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class GroupAdaGrad(SpecOptimizer):
    'Group AdaGrad: one adaptive learning rate per row (e.g. per embedding vector) (specs/groupadagrad.toml).'
    epsilon: float

    def __init__(
        self,
        learning_rate: float | None = 0.01,
        epsilon: float = 1e-06,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class Kron(SpecOptimizer):
    "PSGD-Kron: momentum preconditioned by Kronecker factors Q_L, Q_R (triangular), fitted to random probes by a step on Li's criterion each time the preconditioner updates (specs/kron.toml)."
    momentum: float
    probability: float | None
    max_prob: float
    min_prob: float
    decay: float
    flat_start: int
    precondition_lr: float
    momentum_into_precondition_update: bool
    weight_decouple: bool
    seed: int
    tiny: float

    def __init__(
        self,
        learning_rate: float | None = 0.001,
        momentum: float = 0.9,
        probability: float | None = None,
        max_prob: float = 1.0,
        min_prob: float = 0.03,
        decay: float = 0.001,
        flat_start: int = 500,
        precondition_lr: float = 0.1,
        momentum_into_precondition_update: bool = True,
        weight_decouple: bool = True,
        seed: int = 0,
        tiny: float = 1.1754943508222875e-38,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class LAMB(SpecOptimizer):
    'LAMB: layer-wise adaptive moments for large-batch training (specs/lamb.toml).'
    beta1: float
    beta2: float
    epsilon: float
    lower_bound: float | None
    upper_bound: float | None
    bias_correction: bool

    def __init__(
        self,
        learning_rate: float | None = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-06,
        lower_bound: float | None = None,
        upper_bound: float | None = None,
        bias_correction: bool = True,
        aggregate_num: float | None = 4,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class LANS(SpecOptimizer):
    'LANS: LAMB with a normalised gradient and Nesterov-style blending of two trust-scaled directions (specs/lans.toml).'
    beta1: float
    beta2: float
    epsilon: float
    lower_bound: float | None
    upper_bound: float | None

    def __init__(
        self,
        learning_rate: float | None = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-06,
        lower_bound: float | None = None,
        upper_bound: float | None = None,
        aggregate_num: float | None = 4,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class LARS(SpecOptimizer):
    'LARS: layer-wise adaptive rate scaling on top of SGD with momentum (specs/lars.toml).'
    momentum: float
    eta: float
    epsilon: float

    def __init__(
        self,
        learning_rate: float | None = 0.1,
        momentum: float = 0.0,
        eta: float = 0.001,
        epsilon: float = 1e-08,
        lazy_update: bool = False,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class Lion(SpecOptimizer):
    'Lion: the sign of an interpolated momentum, with decoupled weight decay (specs/lion.toml).'
    beta1: float
    beta2: float
    maximize: bool

    def __init__(
        self,
        learning_rate: float | None = 0.0001,
        beta1: float = 0.9,
        beta2: float = 0.99,
        maximize: bool = False,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class NAG(SpecOptimizer):
    "Nesterov accelerated gradient (SGD with Nesterov momentum), in MXNet's re-parameterised form (specs/nag.toml)."
    momentum: float

    def __init__(
        self,
        learning_rate: float | None = 0.1,
        momentum: float = 0.9,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class Nadam(SpecOptimizer):
    'Nadam: Adam with Nesterov momentum and a momentum schedule (specs/nadam.toml).'
    beta1: float
    beta2: float
    epsilon: float
    schedule_decay: float

    def __init__(
        self,
        learning_rate: float | None = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-08,
        schedule_decay: float = 0.004,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class NovoGrad(SpecOptimizer):
    'NovoGrad: a per-layer second moment from the gradient norm, weight decay added to the normalised gradient (specs/novograd.toml).'
    beta1: float
    beta2: float
    epsilon: float
    maximize: bool

    def __init__(
        self,
        learning_rate: float | None = 0.01,
        beta1: float = 0.95,
        beta2: float = 0.98,
        epsilon: float = 1e-08,
        maximize: bool = False,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class Prodigy(SpecOptimizer):
    'Prodigy: Adam whose step size d is estimated from the whole param group, with no learning rate to tune (specs/prodigy.toml).'
    beta1: float
    beta2: float
    beta3: float | None
    epsilon: float
    d0: float
    d_coef: float
    growth_rate: float
    decouple: bool
    use_bias_correction: bool
    safeguard_warmup: bool

    def __init__(
        self,
        learning_rate: float | None = 1.0,
        beta1: float = 0.9,
        beta2: float = 0.999,
        beta3: float | None = None,
        epsilon: float = 1e-08,
        d0: float = 1e-06,
        d_coef: float = 1.0,
        growth_rate: float = ...,
        decouple: bool = True,
        use_bias_correction: bool = False,
        safeguard_warmup: bool = False,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class RMSProp(SpecOptimizer):
    'RMSProp, plain (Tieleman and Hinton) or centered with momentum (Graves) (specs/rmsprop.toml).'
    rho: float
    momentum: float
    epsilon: float
    centered: bool
    clip_weights: float | None

    def __init__(
        self,
        learning_rate: float | None = 0.001,
        rho: float = 0.9,
        momentum: float = 0.9,
        epsilon: float = 1e-08,
        centered: bool = False,
        clip_weights: float | None = None,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class Rprop(SpecOptimizer):
    'Rprop: per-element step sizes grown while the gradient keeps its sign and shrunk when it flips (specs/rprop.toml).'
    etaminus: float
    etaplus: float
    step_size_min: float
    step_size_max: float
    maximize: bool

    def __init__(
        self,
        learning_rate: float | None = 0.01,
        etaminus: float = 0.5,
        etaplus: float = 1.2,
        step_size_min: float = 1e-06,
        step_size_max: float = 50.0,
        maximize: bool = False,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class SGD(SpecOptimizer):
    'Stochastic gradient descent, with optional momentum (learning rate folded into the momentum buffer, as MXNet does). (specs/sgd.toml).'
    momentum: float

    def __init__(
        self,
        learning_rate: float | None = 0.1,
        momentum: float = 0.0,
        lazy_update: bool = False,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class SGLD(SpecOptimizer):
    'Stochastic gradient Langevin dynamics: half a gradient step plus Gaussian noise of variance lr (specs/sgld.toml).'
    seed: int

    def __init__(
        self,
        learning_rate: float | None = 0.1,
        seed: int = 0,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class SM3(SpecOptimizer):
    'SM3: Adagrad-style steps from per-row and per-column accumulators, the memory of a row and a column per matrix (specs/sm3.toml).'
    momentum: float
    beta: float
    epsilon: float

    def __init__(
        self,
        learning_rate: float | None = 0.1,
        momentum: float = 0.0,
        beta: float = 0.0,
        epsilon: float = 1e-30,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class SOAP(SpecOptimizer):
    "SOAP: Adam run in the eigenbasis of Shampoo's preconditioners, the basis refreshed by one power iteration every precondition_frequency steps (specs/soap.toml)."
    beta1: float
    beta2: float
    shampoo_beta: float | None
    epsilon: float
    precondition_frequency: int
    correct_bias: bool

    def __init__(
        self,
        learning_rate: float | None = 0.003,
        beta1: float = 0.95,
        beta2: float = 0.95,
        shampoo_beta: float | None = None,
        epsilon: float = 1e-08,
        precondition_frequency: int = 10,
        correct_bias: bool = True,
        wd: float = 0.01,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class ScheduleFreeAdamW(SpecOptimizer):
    'Schedule-Free AdamW: no learning-rate schedule; gradients at y, an AdamW step on z, x the weighted average of the z (specs/schedulefreeadamw.toml).'
    beta1: float
    beta2: float
    epsilon: float
    warmup_steps: int
    r: float
    weight_lr_power: float
    decay_at_z: bool

    def __init__(
        self,
        learning_rate: float | None = 0.0025,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-08,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        decay_at_z: bool = False,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...

    def mode(self, index: Any) -> str: ...

    def train(self, index: Any, weight: Any, state: Any) -> None: ...

    def eval(self, index: Any, weight: Any, state: Any) -> None: ...


class Shampoo(SpecOptimizer):
    'Shampoo: the gradient preconditioned on each side by an inverse root of its accumulated Gram matrix, refreshed every update_freq steps (specs/shampoo.toml).'
    momentum: float
    epsilon: float
    update_freq: int

    def __init__(
        self,
        learning_rate: float | None = 0.1,
        momentum: float = 0.0,
        epsilon: float = 0.0001,
        update_freq: int = 1,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class Signum(SpecOptimizer):
    'Signum: SGD on the sign of a momentum average; signSGD when momentum is 0 (specs/signum.toml).'
    momentum: float
    wd_lh: float

    def __init__(
        self,
        learning_rate: float | None = 0.01,
        momentum: float = 0.9,
        wd_lh: float = 0.0,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class Test(SpecOptimizer):
    'The test optimizer of MXNet 2.0: plain gradient descent with weight decay, no clipping (specs/test.toml).'

    def __init__(
        self,
        learning_rate: float | None = 0.01,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...


class Yogi(SpecOptimizer):
    'Yogi: Adam whose second moment moves additively, by the sign of its gap to the squared gradient (specs/yogi.toml).'
    beta1: float
    beta2: float
    epsilon: float
    maximize: bool

    def __init__(
        self,
        learning_rate: float | None = 0.01,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 0.001,
        maximize: bool = False,
        use_fused_step: bool | None = True,
        *,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        lr_scheduler: Callable[[int], float] | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
        aggregate_num: float | None = None,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
    ) -> None: ...
