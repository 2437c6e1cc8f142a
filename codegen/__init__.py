"""The generator: spec parser -> IR (sympy) -> analysis -> emitters (NumPy, CUDA, docs).

Importing this package is cheap; sympy and jinja2 load with the submodules that need them.
"""
from .errors import SpecError
