"""Type stubs of the torch-style optimizer classes: optforge.torch.Adam(model.parameters(), lr=0.001, betas=(0.9, 0.999)).

Generated from specs/ by `optforge generate`; do not edit. Imported for type checkers only.
"""
from typing import Any, Callable, Iterable, Literal

from torch.optim import Optimizer

__all__ = [
    'ADOPT',
    'AMSGrad',
    'ASGD',
    'AdEMAMix',
    'AdaBelief',
    'AdaBound',
    'Adadelta',
    'Adafactor',
    'Adagrad',
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
    'Muon',
    'NAG',
    'NAdam',
    'NovoGrad',
    'Prodigy',
    'RAdam',
    'RMSprop',
    'Rprop',
    'SGD',
    'SGLD',
    'SM3',
    'SOAP',
    'ScheduleFreeAdamW',
    'Shampoo',
    'Signum',
    'SparseAdam',
    'Test',
    'Yogi',
]


class ADOPT(Optimizer):
    'ADOPT: the gradient normalised by the previous second moment, then averaged; converges with any beta2 (specs/adopt.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        *,
        betas: tuple[float, float] = (0.9, 0.9999),
        eps: float = 1e-06,
        use_clipping: bool = True,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class AMSGrad(Optimizer):
    'AMSGrad: Adam normalised by the maximum of past second moments (specs/amsgrad.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-08,
        maximize: bool = False,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class ASGD(Optimizer):
    'ASGD with torch.optim.ASGD semantics: SGD with a decaying step size and a Polyak-Ruppert average of the iterates (specs/torch/asgd.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.01,
        *,
        lambd: float = 0.0001,
        alpha: float = 0.75,
        t0: float = 1000000.0,
        maximize: bool = False,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class AdEMAMix(Optimizer):
    'AdEMAMix: Adam with a second, slow momentum mixed into the numerator, with warmups of alpha and beta3 (specs/ademamix.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        *,
        betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
        alpha: float = 5.0,
        eps: float = 1e-08,
        warmup: float | None = None,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class AdaBelief(Optimizer):
    'AdaBelief: adapting stepsizes by the belief in observed gradients (specs/adabelief.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-06,
        correct_bias: bool = True,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class AdaBound(Optimizer):
    "AdaBound: Adam whose per-element step size is clipped into bounds that converge to SGD's learning rate (specs/adabound.toml)."

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        final_lr: float = 0.1,
        gamma: float = 0.001,
        eps: float = 1e-08,
        amsbound: bool = False,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class Adadelta(Optimizer):
    "Adadelta with torch.optim.Adadelta semantics (states in the weight's dtype) (specs/torch/adadelta.toml)."

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        *,
        rho: float = 0.9,
        eps: float = 1e-06,
        maximize: bool = False,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class Adafactor(Optimizer):
    'Adafactor with torch.optim.Adafactor semantics: second moments factored into row and column means, relative step size (specs/torch/adafactor.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.01,
        *,
        beta2_decay: float = -0.8,
        eps: tuple[float | None, float] = (None, 0.001),
        d: float = 1.0,
        maximize: bool = False,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class Adagrad(Optimizer):
    'Adagrad with torch.optim.Adagrad semantics: learning-rate decay, epsilon 1e-10 (specs/torch/adagrad.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.01,
        *,
        eps: float = 1e-10,
        lr_decay: float = 0.0,
        maximize: bool = False,
        initial_accumulator_value: float = 0.0,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class Adam(Optimizer):
    'Adam with torch.optim.Adam semantics: epsilon outside the bias-corrected square root, optional AMSGrad (specs/torch/adam.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-08,
        amsgrad: bool = False,
        maximize: bool = False,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        decoupled_weight_decay: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class AdamW(Optimizer):
    'AdamW with torch.optim.AdamW semantics: decoupled weight decay lr * wd * weight, default wd 0.01 (specs/torch/adamw.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-08,
        amsgrad: bool = False,
        maximize: bool = False,
        weight_decay: float = 0.01,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class Adamax(Optimizer):
    'Adamax with torch.optim / mindspore.experimental.optim semantics: u = max(beta2 * u, |g| + eps) (specs/torch/adamax.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.002,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-08,
        maximize: bool = False,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class Adan(Optimizer):
    'Adan: adaptive Nesterov momentum from averages of the gradient, its difference and a corrected square (specs/adan.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        *,
        betas: tuple[float, float, float] = (0.98, 0.92, 0.99),
        eps: float = 1e-08,
        maximize: bool = False,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class AggMo(Optimizer):
    'Aggregated momentum: the mean of several heavy-ball velocities, each with its own damping (specs/aggmo.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        *,
        betas: tuple[float, float, float] = (0.0, 0.9, 0.99),
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class CAME(Optimizer):
    "CAME: Adafactor's factored second moment with a first moment whose step is scaled by a factored confidence (instability) estimate (specs/came.toml)."

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.0002,
        *,
        betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
        eps: tuple[float, float] = (1e-30, 1e-16),
        clip_threshold: float = 1.0,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class CAdamW(Optimizer):
    "Cautious AdamW: the Adam step only where it agrees in sign with the gradient, rescaled by the mask's size (specs/cadamw.toml)."

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-08,
        mask_epsilon: float = 1.0,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class ClippedAdamW(Optimizer):
    'AdamW (torch.optim.AdamW) with the gradients of each param group clipped to a global L2 norm, in the step (specs/clippedadamw.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-08,
        amsgrad: bool = False,
        max_norm: float = 1.0,
        weight_decay: float = 0.01,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class DAdaptAdam(Optimizer):
    'D-Adaptation Adam: Adam whose step size d is estimated from the whole param group, with no learning rate to tune (specs/dadaptadam.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-08,
        d0: float = 1e-06,
        growth_rate: float = ...,
        layer_scale: float = 1.0,
        decouple: bool = False,
        use_bias_correction: bool = False,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class DCASGD(Optimizer):
    'DC-ASGD: SGD with delay compensation for asynchronous training (specs/dcasgd.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.1,
        *,
        momentum: float = 0.0,
        lamda: float = 0.04,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class FTML(Optimizer):
    'FTML: Follow the Moving Leader (specs/ftml.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.0025,
        *,
        betas: tuple[float, float] = (0.6, 0.999),
        eps: float = 1e-08,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class Ftrl(Optimizer):
    'FTRL-Proximal: follow the regularized leader with L1 and L2 regularization (specs/ftrl.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.1,
        *,
        lamda1: float = 0.01,
        beta: float = 1.0,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class GroupAdaGrad(Optimizer):
    'Group AdaGrad: one adaptive learning rate per row (e.g. per embedding vector) (specs/groupadagrad.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.01,
        *,
        eps: float = 1e-06,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class Kron(Optimizer):
    "PSGD-Kron: momentum preconditioned by Kronecker factors Q_L, Q_R (triangular), fitted to random probes by a step on Li's criterion each time the preconditioner updates (specs/kron.toml)."

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        *,
        momentum: float = 0.9,
        pre_conditioner_update_probability: float | None = None,
        max_prob: float = 1.0,
        min_prob: float = 0.03,
        decay: float = 0.001,
        flat_start: int = 500,
        precondition_lr: float = 0.1,
        momentum_into_precondition_update: bool = True,
        weight_decouple: bool = True,
        seed: int = 0,
        tiny: float = 1.1754943508222875e-38,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class LAMB(Optimizer):
    'LAMB: layer-wise adaptive moments for large-batch training (specs/lamb.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-06,
        lower_bound: float | None = None,
        upper_bound: float | None = None,
        bias_correction: bool = True,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class LANS(Optimizer):
    'LANS: LAMB with a normalised gradient and Nesterov-style blending of two trust-scaled directions (specs/lans.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-06,
        lower_bound: float | None = None,
        upper_bound: float | None = None,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class LARS(Optimizer):
    'LARS: layer-wise adaptive rate scaling on top of SGD with momentum (specs/lars.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.1,
        *,
        momentum: float = 0.0,
        eta: float = 0.001,
        eps: float = 1e-08,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class Lion(Optimizer):
    'Lion: the sign of an interpolated momentum, with decoupled weight decay (specs/lion.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.0001,
        *,
        betas: tuple[float, float] = (0.9, 0.99),
        maximize: bool = False,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class Muon(Optimizer):
    'Muon with torch.optim.Muon semantics: momentum orthogonalised by a Newton-Schulz iteration, for 2-D parameters (specs/torch/muon.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        *,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_coefficients: tuple[float, float, float] = (3.4445, -4.775, 2.0315),
        eps: float = 1e-07,
        ns_steps: int = 5,
        ns_dtype: Literal['bfloat16'] | None = None,
        adjust_lr_fn: Literal['original', 'match_rms_adamw'] | None = None,
        weight_decay: float = 0.1,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class NAG(Optimizer):
    "Nesterov accelerated gradient (SGD with Nesterov momentum), in MXNet's re-parameterised form (specs/nag.toml)."

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.1,
        *,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class NAdam(Optimizer):
    'NAdam with torch.optim.NAdam semantics: momentum_decay schedule, optional decoupled weight decay (specs/torch/nadam.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.002,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-08,
        momentum_decay: float = 0.004,
        decoupled_weight_decay: bool = False,
        maximize: bool = False,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class NovoGrad(Optimizer):
    'NovoGrad: a per-layer second moment from the gradient norm, weight decay added to the normalised gradient (specs/novograd.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.01,
        *,
        betas: tuple[float, float] = (0.95, 0.98),
        eps: float = 1e-08,
        maximize: bool = False,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class Prodigy(Optimizer):
    'Prodigy: Adam whose step size d is estimated from the whole param group, with no learning rate to tune (specs/prodigy.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        beta3: float | None = None,
        eps: float = 1e-08,
        d0: float = 1e-06,
        d_coef: float = 1.0,
        growth_rate: float = ...,
        decouple: bool = True,
        use_bias_correction: bool = False,
        safeguard_warmup: bool = False,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class RAdam(Optimizer):
    'RAdam: Adam with a rectified adaptive learning rate (torch.optim.RAdam semantics) (specs/torch/radam.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-08,
        decoupled_weight_decay: bool = False,
        maximize: bool = False,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class RMSprop(Optimizer):
    'RMSprop with torch.optim.RMSprop semantics: alpha, epsilon outside the square root, optional centering and momentum (specs/torch/rmsprop.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.01,
        *,
        momentum: float = 0.0,
        eps: float = 1e-08,
        centered: bool = False,
        alpha: float = 0.99,
        maximize: bool = False,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class Rprop(Optimizer):
    'Rprop: per-element step sizes grown while the gradient keeps its sign and shrunk when it flips (specs/rprop.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.01,
        *,
        etas: tuple[float, float] = (0.5, 1.2),
        step_sizes: tuple[float, float] = (1e-06, 50.0),
        maximize: bool = False,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class SGD(Optimizer):
    'Stochastic gradient descent with momentum, dampening and Nesterov momentum (torch.optim.SGD semantics) (specs/torch/sgd.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        *,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        maximize: bool = False,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class SGLD(Optimizer):
    'Stochastic gradient Langevin dynamics: half a gradient step plus Gaussian noise of variance lr (specs/sgld.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.1,
        *,
        seed: int = 0,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class SM3(Optimizer):
    'SM3: Adagrad-style steps from per-row and per-column accumulators, the memory of a row and a column per matrix (specs/sm3.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.1,
        *,
        momentum: float = 0.0,
        beta: float = 0.0,
        eps: float = 1e-30,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class SOAP(Optimizer):
    "SOAP: Adam run in the eigenbasis of Shampoo's preconditioners, the basis refreshed by one power iteration every precondition_frequency steps (specs/soap.toml)."

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.003,
        *,
        betas: tuple[float, float] = (0.95, 0.95),
        shampoo_beta: float | None = None,
        eps: float = 1e-08,
        precondition_frequency: int = 10,
        correct_bias: bool = True,
        weight_decay: float = 0.01,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class ScheduleFreeAdamW(Optimizer):
    'Schedule-Free AdamW: no learning-rate schedule; gradients at y, an AdamW step on z, x the weighted average of the z (specs/schedulefreeadamw.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.0025,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-08,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        decay_at_z: bool = False,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...

    def train(self) -> None: ...

    def eval(self) -> None: ...


class Shampoo(Optimizer):
    'Shampoo: the gradient preconditioned on each side by an inverse root of its accumulated Gram matrix, refreshed every update_freq steps (specs/shampoo.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.1,
        *,
        momentum: float = 0.0,
        eps: float = 0.0001,
        update_freq: int = 1,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class Signum(Optimizer):
    'Signum: SGD on the sign of a momentum average; signSGD when momentum is 0 (specs/signum.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.01,
        *,
        momentum: float = 0.9,
        wd_lh: float = 0.0,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class SparseAdam(Optimizer):
    "SparseAdam with torch.optim.SparseAdam semantics: lazy Adam, only the gradient's rows and their moments change (specs/torch/sparseadam.toml)."

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-08,
        maximize: bool = False,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class Test(Optimizer):
    'The test optimizer of MXNet 2.0: plain gradient descent with weight decay, no clipping (specs/test.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.01,
        *,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...


class Yogi(Optimizer):
    'Yogi: Adam whose second moment moves additively, by the sign of its gap to the squared gradient (specs/yogi.toml).'

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.01,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 0.001,
        maximize: bool = False,
        weight_decay: float = 0.0,
        state_storage: Literal['8bit', 'bfloat16', 'bfloat16_stochastic'] | None = None,
        min_8bit_size: int = 4096,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        capturable: Literal[False] = False,
        master_weights: bool = False,
        group_all_reduce: bool = False,
    ) -> None: ...
