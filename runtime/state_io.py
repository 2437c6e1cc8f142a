"""Saving optimizer states without pickle.

`Updater.get_states()` returns bytes in the NumPy `.npz` format: one entry per
array plus `meta`, a UTF-8 JSON document describing the nested state structure
(None, arrays, tuples, 8-bit states as their uint8 codes and float32 absmax) and,
optionally, the optimizer's configuration and counters. Loading uses `allow_pickle=False`: reading states never runs code.
Arrays keep their exact bits, so resuming gives bit-identical results.
"""
import io
import json
import math
import zipfile

import numpy
from numpy.lib import format as npy

from .validation import FLOAT_DTYPES, entries

from .backends import is_cupy_array, quantized
from .backends.quantized import Blockwise8bit, blocks

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
    """(states, optimizer config or None) from `dumps` output; ValueError if it is not one.

    Everything is checked before any array is read: the archive's members (stored, of a
    size the data can hold), each array's header (its declared shape and dtype must fill
    exactly its member: a header declaring 10^12 elements is refused, never allocated),
    and the JSON structure."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"states must be bytes from get_states(), got {type(data).__name__}")
    data = bytes(data)
    try:
        sizes = _array_sizes(data)
        archive = numpy.load(io.BytesIO(data), allow_pickle=False)
        meta = json.loads(archive["meta"].tobytes().decode("utf-8"))
    except ValueError as err:
        raise ValueError(f"not an optforge states file: {err}") from None
    except Exception as err:  # noqa: BLE001 - any failure of zipfile/json means "not our format"
        raise ValueError(f"not an optforge states file ({type(err).__name__}: {err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError("not an optforge states file")
    if meta.get("version") != VERSION:
        raise ValueError(f"unsupported states version {meta.get('version')!r} (this optforge reads {VERSION})")
    entries("states file", meta, ("format", "version", "states", "optimizer"))
    if not isinstance(meta["states"], list):
        raise ValueError("the states file's states must be a list")
    if meta["optimizer"] is not None and not isinstance(meta["optimizer"], dict):
        raise ValueError("the states file's optimizer must be a dict or null")
    states = {}
    for item in meta["states"]:
        if not (isinstance(item, list) and len(item) == 2):
            raise ValueError(f"a state entry must be [index, state], got {item!r:.80}")
        key = _decode_key(item[0])
        if key in states:
            raise ValueError(f"the states file has two states for parameter {key!r}")
        states[key] = _decode(item[1], archive, sizes, depth=0)
    return states, meta["optimizer"]


def _array_sizes(data):
    """{member name: (shape, dtype)} of every .npy member, read from the headers alone."""
    sizes = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size \
                    or info.file_size > len(data):
                raise ValueError(f"member {name!r} is compressed or larger than the file "
                                 f"({info.file_size} bytes declared)")
            with archive.open(info) as member:
                version = npy.read_magic(member)
                if version == (1, 0):
                    shape, fortran, dtype = npy.read_array_header_1_0(member)
                elif version == (2, 0):
                    shape, fortran, dtype = npy.read_array_header_2_0(member)
                else:
                    raise ValueError(f"member {name!r} has .npy version {version}")
                header = member.tell()
            if dtype.hasobject:
                raise ValueError(f"member {name!r} holds Python objects")
            declared = math.prod(shape) * dtype.itemsize
            if declared != info.file_size - header:
                raise ValueError(f"member {name!r} declares shape {shape} of {dtype} ({declared} bytes) "
                                 f"but holds {info.file_size - header} bytes")
            sizes[name] = (shape, dtype)
    return sizes
def _encode_key(index):
    if isinstance(index, (bool, numpy.bool_)):
        raise TypeError(f"cannot save a state under index {index!r}")
    if isinstance(index, (int, numpy.integer)):
        return ["int", int(index)]
    if isinstance(index, str):
        return ["str", index]
    raise TypeError(f"cannot save a state under index {index!r}: indices must be int or str")


def _decode_key(key):
    if isinstance(key, list) and len(key) == 2:
        kind, value = key
        if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind == "str" and isinstance(value, str):
            return value
    raise ValueError(f"a state's index must be [\"int\", int] or [\"str\", str], got {key!r:.80}")


def _encode(state, arrays):
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return {"tuple" if isinstance(state, tuple) else "list": [_encode(s, arrays) for s in state]}
    if isinstance(state, Blockwise8bit):
        return {"blockwise8bit": {"codes": _encode(state.codes, arrays), "absmax": _encode(state.absmax, arrays),
                                  "signed": state.signed}}
    if is_cupy_array(state):
        # a bfloat16 state on CuPy arrays is its bits (a uint16 array): saved as a bfloat16 one
        state = quantized.bfloat16_as(state, numpy) if quantized.is_bfloat16(state) else state.get()
    if isinstance(state, numpy.ndarray):
        name = f"a{len(arrays)}"
        dtype = str(state.dtype)
        if dtype == "bfloat16":  # not a NumPy dtype: store the bits
            arrays[name] = state.view(numpy.uint16)
        else:
            arrays[name] = state
        return {"array": name, "dtype": dtype}
    raise TypeError(f"cannot save a state of type {type(state).__name__}")


MAX_DEPTH = 4   # (weight32, (mean, var)) is 2 deep


def _decode(tree, archive, sizes, depth):
    if tree is None:
        return None
    if depth > MAX_DEPTH or not isinstance(tree, dict) or len(tree) not in (1, 2):
        raise ValueError(f"a saved state must be null, an array or a tuple of them, got {tree!r:.80}")
    if len(tree) == 1 and isinstance(tree.get("tuple", tree.get("list")), list):
        parts = [_decode(t, archive, sizes, depth + 1) for t in tree.get("tuple", tree.get("list"))]
        return tuple(parts) if "tuple" in tree else parts
    if len(tree) == 1 and "blockwise8bit" in tree:
        return _decode_8bit(tree["blockwise8bit"], archive, sizes)
    return _decode_array(tree, archive, sizes)


def _decode_8bit(tree, archive, sizes):
    """An 8-bit state: uint8 codes and float32 absmax, one per block of the codes."""
    if not isinstance(tree, dict) or set(tree) != {"codes", "absmax", "signed"} \
            or not isinstance(tree["signed"], bool):
        raise ValueError(f"a saved 8-bit state has codes, absmax and signed: {tree!r:.80}")
    codes = _decode_array(tree["codes"], archive, sizes, ("uint8",))
    absmax = _decode_array(tree["absmax"], archive, sizes, ("float32",))
    if absmax.shape != (blocks(codes.size),):
        raise ValueError(f"a saved 8-bit state of {codes.size} codes has {absmax.size} absmax values, "
                         f"expected {blocks(codes.size)}")
    return Blockwise8bit(codes, absmax, tree["signed"])


def _decode_array(tree, archive, sizes, dtypes=FLOAT_DTYPES):
    if not isinstance(tree, dict):
        raise ValueError(f"a saved state must be null, an array or a tuple of them, got {tree!r:.80}")
    name, dtype = tree.get("array"), tree.get("dtype")
    if set(tree) != {"array", "dtype"} or not isinstance(name, str) or name == "meta" or name not in sizes:
        raise ValueError(f"a saved state names no array of the file: {tree!r:.80}")
    if dtype not in dtypes:
        raise ValueError(f"array {name} has dtype {dtype!r}; saved states are {', '.join(dtypes)}")
    stored = "uint16" if dtype == "bfloat16" else dtype    # bfloat16 is stored as its bits
    if str(sizes[name][1]) != stored:
        raise ValueError(f"array {name} has dtype {sizes[name][1]}, expected {stored}")
    array = archive[name]
    if dtype == "bfloat16":
        import ml_dtypes
        array = array.view(ml_dtypes.bfloat16)
    return array
