"""Shared helpers for the tests: seeded signed data, state comparison, stated tolerances."""
import numpy as np

# Tolerances for comparing optforge with the hand-written references.
# Both sides compute the same formula with different operation orders (sympy's
# canonical order, hoisted host scalars computed in float64 and rounded once);
# each operation rounds by at most half an ulp, a step has up to ~25 of them and
# errors feed back through the states over the steps compared.
# - float64: rtol 1e-10 (a few thousand ulps at 1.1e-16 each, far below any
#   semantic difference such as a missing term or a swapped beta).
# - float32: rtol 2e-5 (about 170 ulps at 6e-8 each); atol 1e-6 covers values
#   that cancel to near zero, where relative error is meaningless.
TOLERANCES = {
    np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12),
    np.dtype(np.float32): dict(rtol=2e-5, atol=1e-6),
}

SHAPES = [(3, 4, 5), (7,)]


def signed(rng, shape, scale, dtype):
    """Normal data of both signs; with scale 2 many values lie beyond a clip bound of 0.6."""
    return (rng.standard_normal(shape) * scale).astype(dtype)


def as_parts(state):
    """A state as a flat tuple of arrays (None -> ())."""
    if state is None:
        return ()
    if isinstance(state, tuple):
        return state
    return (state,)


def assert_close(actual, expected, dtype, what):
    tol = TOLERANCES[np.dtype(dtype)]
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, err_msg=what, **tol)


def assert_states_close(actual, expected, dtype, what):
    a, e = as_parts(actual), as_parts(expected)
    assert len(a) == len(e), f"{what}: state has {len(a)} parts, reference {len(e)}"
    for k, (x, y) in enumerate(zip(a, e)):
        assert_close(x, y, dtype, f"{what}, state part {k}")
