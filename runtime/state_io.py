"""Saving optimizer states without pickle.

`Updater.get_states()` returns bytes in the NumPy `.npz` format: one entry per
array plus `meta`, a UTF-8 JSON document describing the nested state structure
(None, arrays, tuples) and, optionally, the optimizer's configuration and
counters. Loading uses `allow_pickle=False`: reading states never runs code.
Arrays keep their exact bits, so resuming gives bit-identical results.
"""
import io
import json

import numpy

from .backends import is_cupy_array

FORMAT = "optforge-states"
VERSION = 1


def dumps(states, optimizer=None):
    """states: {index: state}; optimizer: a JSON-compatible dict or None."""
    arrays = {}
    entries = []
    for index, state in states.items():
        entries.append([_encode_key(index), _encode(state, arrays)])
    meta = {"format": FORMAT, "version": VERSION, "states": entries, "optimizer": optimizer}
    text = json.dumps(meta, sort_keys=True, allow_nan=True)
    buffer = io.BytesIO()
    numpy.savez(buffer, meta=numpy.frombuffer(text.encode("utf-8"), dtype=numpy.uint8), **arrays)
    return buffer.getvalue()


def loads(data):
    """(states, optimizer config or None) from `dumps` output; ValueError if it is not one."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"states must be bytes from get_states(), got {type(data).__name__}")
    try:
        archive = numpy.load(io.BytesIO(bytes(data)), allow_pickle=False)
        meta = json.loads(archive["meta"].tobytes().decode("utf-8"))
    except Exception as err:  # noqa: BLE001 - any failure means "not our format"
        raise ValueError(f"not an optforge states file ({type(err).__name__}: {err})") from None
    if meta.get("format") != FORMAT:
        raise ValueError("not an optforge states file")
    if meta.get("version") != VERSION:
        raise ValueError(f"unsupported states version {meta.get('version')!r} (this optforge reads {VERSION})")
    states = {}
    for key, tree in meta["states"]:
        states[_decode_key(key)] = _decode(tree, archive)
    return states, meta.get("optimizer")


def _encode_key(index):
    if isinstance(index, (bool, numpy.bool_)):
        raise TypeError(f"cannot save a state under index {index!r}")
    if isinstance(index, (int, numpy.integer)):
        return ["int", int(index)]
    if isinstance(index, str):
        return ["str", index]
    raise TypeError(f"cannot save a state under index {index!r}: indices must be int or str")


def _decode_key(key):
    kind, value = key
    return int(value) if kind == "int" else str(value)


def _encode(state, arrays):
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return {"tuple" if isinstance(state, tuple) else "list": [_encode(s, arrays) for s in state]}
    if is_cupy_array(state):
        state = state.get()
    if isinstance(state, numpy.ndarray):
        name = f"a{len(arrays)}"
        dtype = str(state.dtype)
        if dtype == "bfloat16":  # not a NumPy dtype: store the bits
            arrays[name] = state.view(numpy.uint16)
        else:
            arrays[name] = state
        return {"array": name, "dtype": dtype}
    raise TypeError(f"cannot save a state of type {type(state).__name__}")


def _decode(tree, archive):
    if tree is None:
        return None
    if "tuple" in tree:
        return tuple(_decode(t, archive) for t in tree["tuple"])
    if "list" in tree:
        return [_decode(t, archive) for t in tree["list"]]
    array = archive[tree["array"]]
    if tree["dtype"] == "bfloat16":
        import ml_dtypes
        array = array.view(ml_dtypes.bfloat16)
    elif str(array.dtype) != tree["dtype"]:
        raise ValueError(f"array {tree['array']} has dtype {array.dtype}, expected {tree['dtype']}")
    return array
