"""Registry, class construction, signatures and docstrings."""
import inspect
import warnings

import pytest

import optforge
from optforge.runtime import registry

MXNET2_NAMES = {"sgd", "nag", "signum", "ftml", "dcasgd", "sgld", "adam", "adamw", "adamax", "nadam",
                "adagrad", "adadelta", "rmsprop", "ftrl", "test"}


def test_every_mxnet2_elementwise_optimizer_is_registered():
    assert MXNET2_NAMES <= set(registry.names())


def test_create_is_case_insensitive():
    assert type(optforge.create("ADAM")) is optforge.Adam
    assert type(optforge.create_optimizer("RmsProp")) is optforge.RMSProp
    assert type(optforge.Optimizer.create_optimizer("sgd")) is optforge.SGD


def test_unknown_name_and_flavor():
    with pytest.raises(ValueError, match="Cannot find optimizer nadamw"):
        optforge.create("nadamw")
    with pytest.raises(ValueError, match="Unknown flavor 'torch9'; did you mean 'torch'\\? known flavors: .*mxnet2"):
        optforge.create("adam", flavor="torch9")


def test_register_overrides_with_a_warning():
    class Adam(optforge.Optimizer):
        pass
    original = registry.lookup("adam")
    try:
        with pytest.warns(UserWarning, match="is overriding existing optimizer"):
            optforge.register(Adam)
        assert registry.lookup("adam") is Adam
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optforge.register(original)


def test_register_requires_an_optimizer_class():
    with pytest.raises(TypeError):
        optforge.register(object)


def test_signature_matches_mxnet_2():
    sig = inspect.signature(optforge.Adam)
    assert list(sig.parameters) == ["learning_rate", "beta1", "beta2", "epsilon", "lazy_update",
                                    "use_fused_step", "kwargs"]
    assert sig.parameters["learning_rate"].default == 0.001
    assert sig.parameters["epsilon"].default == 1e-8
    assert inspect.signature(optforge.SGD).parameters["learning_rate"].default == 0.1
    assert inspect.signature(optforge.RMSProp).parameters["clip_weights"].default is None


def test_positional_arguments_and_bad_keywords():
    opt = optforge.Adam(0.5, 0.8)
    assert opt.lr == 0.5 and opt.beta1 == 0.8
    with pytest.raises(TypeError, match="unexpected keyword argument 'betaa1'"):
        optforge.Adam(betaa1=0.5)


def test_docstring_carries_the_formula_and_hyperparameters():
    doc = optforge.Adam.__doc__
    assert "mean   = beta1 * mean + (1 - beta1) * grad" in doc
    assert "beta1 : float, default 0.9, in [0, 1)" in doc
    assert "Kingma and Ba" in doc
    assert "m_schedule is kept per parameter" in optforge.Nadam.__doc__


@pytest.mark.parametrize("name", sorted(MXNET2_NAMES))
def test_classes_hold_no_hand_written_math(name):
    cls = registry.lookup(name)
    own = {k: v for k, v in vars(cls).items() if not k.startswith("__") or k == "__init__"}
    functions = [k for k, v in own.items() if inspect.isfunction(v)]
    assert functions == ["__init__"]                      # the generic argument binder only
    properties = {k for k, v in own.items() if isinstance(v, property)}
    assert properties == {h["name"] for h in cls.SPEC["hyperparameters"]}


def test_import_does_not_load_the_generator():
    import subprocess
    import sys
    code = ("import sys, optforge; optforge.create('adam'); "
            "print(sorted(m for m in ('sympy', 'jinja2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_misspelt_name_suggests_the_closest_names():
    with pytest.raises(ValueError, match=r"Cannot find optimizer adma \(flavor 'mxnet2'\); did you mean 'adam'"):
        optforge.create("adma")
    with pytest.raises(ValueError, match="did you mean 'lamb'\\?"):
        optforge.create("LAMD")
    with pytest.raises(ValueError, match="Unknown flavor 'pytorch'; did you mean 'torch'\\? known flavors: mxnet1"):
        optforge.create("adam", flavor="pytorch")
    with pytest.raises(ValueError) as info:
        optforge.create("xyzzy")
    assert "did you mean" not in str(info.value) and "registered: adabelief" in str(info.value)


def test_lr_scheduler_and_optimizer_are_modules_with_mxnets_names():
    import importlib
    lr_scheduler = importlib.import_module("optforge.lr_scheduler")
    from optforge.lr_scheduler import CosineScheduler, FactorScheduler, MultiFactorScheduler, PolyScheduler
    assert optforge.lr_scheduler is lr_scheduler
    assert all(issubclass(c, lr_scheduler.LRScheduler)
               for c in (CosineScheduler, FactorScheduler, MultiFactorScheduler, PolyScheduler))
    from optforge import optimizer
    assert importlib.import_module("optforge.optimizer") is optimizer
    assert optimizer.Adam is optforge.Adam and optimizer.Optimizer is optforge.Optimizer
    opt = optimizer.create("adam", lr_scheduler=FactorScheduler(step=2, factor=0.5, base_lr=0.1))
    assert type(opt) is optimizer.Adam
    assert optimizer.get_updater(opt).optimizer is opt and optimizer.Updater is optforge.Updater
    assert optimizer.register is optforge.register
    assert "SGD" in dir(optimizer)
    with pytest.raises(AttributeError, match="no attribute 'Adma'"):
        optimizer.Adma
