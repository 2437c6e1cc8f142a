"""Native CPU kernels of element-wise variants whose states are stored quantized.

A storage of states is a kernel suffix like a weight dtype (docs/architecture.md,
"Quantized optimizer states"): `f32_q8` (float32 weight and gradient, the states a spec
marks `quantize` in 8 bits: codes and a float32 absmax per block of 256) and `f32_qbf16`
(the same states as bfloat16, rounded to nearest even) and `f32_qbf16sr` (bfloat16 rounded
stochastically: `om::stochastic_bfloat16`, the reference's random bits, from one 64-bit key
per stored state computed by the runtime, `quantized.rounding_key`, and the element's
index in its tensor). The variant's per-element math is
the one the float32 kernels call, unchanged: these kernels differ only in how they load
and store the stored states (`templates/cpu_quantized.cpp.j2`). 8-bit states are computed a
block of 256 elements at a time, since a block's new absmax must be known before any of
its values is quantized: the new values wait in a small buffer per state, then
`om::quantize_block` (generated/cpu/optforge_cpu.h) writes codes and absmax.

Which variants get them (`eligible`): those without passes (reductions), row or device
scalar values and noise, with at least one stored state; the others run their NumPy code
between load and store (runtime/engine/engine.py).
"""
QUANTIZED = ("f32_q8", "f32_qbf16", "f32_qbf16sr")     # kernel suffixes of stored states


def _stored(rule, context):
    """The variant's state arrays a quantized storage stores (the spec's `quantize`), with
    whether their 8-bit form uses the signed map."""
    quantize = {st.name: st.quantize for st in rule.states}
    return [{"c": a["c"], "name": a["name"], "signed": quantize[a["name"]] != "unsigned"}
            for a in context["arrays"][2:] if quantize.get(a["name"])]


def eligible(context):
    return not (context["passes"] or context["rows"] or context["device"] or context["noise"])


def stored_states(rule, context):
    """The stored states of a variant that gets quantized kernels, else []."""
    return _stored(rule, context) if eligible(context) else []


def metadata(rule, context):
    """The launch metadata of the quantized kernels: {} for a variant without states to store,
    {"quantized": None} for one whose stored states have no kernels (its NumPy code runs),
    else the states they store (in kernel order) and their names per suffix."""
    stored = _stored(rule, context)
    if not stored:
        return {}
    if not eligible(context):
        return {"quantized": None}
    return {"quantized": {"states": [s["name"] for s in stored],
                          "kernels": {q: f"{context['fn']}_{q}" for q in QUANTIZED}}}


def kernels(rule, context):
    """The template context of a variant's quantized kernels: per suffix the span's and the
    entry point's parameters, the loads and stores around the math, the table row layout."""
    stored = {s["c"]: s for s in stored_states(rule, context)}
    if not stored:
        return []
    return [_kernel(context, stored, suffix) for suffix in QUANTIZED]


def _kernel(context, stored, suffix):
    eight, stochastic = suffix == "f32_q8", suffix == "f32_qbf16sr"
    params, pointers, loads, stores, offsets, row_args, blocks = [], [], [], [], [], [], []
    keys = []       # stochastic rounding: one key per stored state, in kernel order
    for a in context["arrays"]:
        c, written = a["c"], a["written"] or a["c"] in stored   # every stored state is stored back
        const = "" if written else "const "
        if c in stored and eight:
            params += [f"unsigned char* __restrict__ c_{c}", f"float* __restrict__ a_{c}"]
            k = len(pointers)
            pointers += [f"c_{c}", f"a_{c}"]
            offsets += [f"c_{c} + lo", f"a_{c} + lo / om::QBLOCK"]
            row_args += [f"om::pointer<unsigned char>(row[{k}]) + start",
                         f"om::pointer<float>(row[{k + 1}]) + start / om::QBLOCK"]
            loads.append(f"float x_{c} = v_{c}[i];")
            stores.append(f"v_{c}[i] = x_{c};")
            blocks.append({"c": c, "map": 0 if stored[c]["signed"] else 1})
            continue
        ctype = "om::bfloat16" if c in stored else "float"
        params.append(f"{const}{ctype}* __restrict__ p_{c}")
        row_args.append(f"om::pointer<{const}{ctype}>(row[{len(pointers)}]) + start")
        pointers.append(f"p_{c}")
        offsets.append(f"p_{c} + lo")
        loads.append(f"float x_{c} = om::get(p_{c}, e);")
        if c in stored and stochastic:
            keys.append(f"key_{c}")
            # the element's index in its tensor: the span's first, `base`, plus e
            stores.append(f"p_{c}[e] = om::stochastic_bfloat16(x_{c}, key_{c}, om::u64(base + e));")
        elif written:
            stores.append(f"om::put(p_{c}, e, x_{c});")
    scalars = context["scalars"]
    count = len(pointers)
    first_key = count + 2 + len(scalars)
    return {
        "name": f"{context['fn']}_{suffix}",
        "eight": eight,
        "stochastic": stochastic,
        "key_names": keys,
        "key_words": list(range(first_key, first_key + len(keys))),
        "params": params,
        "loads": loads,
        "stores": stores,
        "blocks": blocks,
        "offset_args": offsets,
        "row_args": row_args,
        "row_words": pointers + ["numel", "first_chunk"] + scalars + keys,
        "row": first_key + len(keys),
        "count_word": count,
        "first_chunk_word": count + 1,
        "scalar_words": list(range(count + 2, count + 2 + len(scalars))),
    }
