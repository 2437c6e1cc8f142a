"""`optforge.lr_scheduler`: MXNet's learning-rate schedulers (`mxnet.lr_scheduler`), with
MXNet's exact boundaries; see runtime/schedulers.py.

    >>> from optforge.lr_scheduler import FactorScheduler
    >>> opt = optforge.create('sgd', lr_scheduler=FactorScheduler(step=100, factor=0.5))
"""
from .runtime.schedulers import (CosineScheduler, FactorScheduler, LRScheduler, MultiFactorScheduler,
                                   PolyScheduler)

__all__ = ["LRScheduler", "FactorScheduler", "MultiFactorScheduler", "PolyScheduler", "CosineScheduler"]
