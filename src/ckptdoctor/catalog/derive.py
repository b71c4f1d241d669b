"""Named helpers that turn the raw parts of a message into sentences the explanation can use.

An entry lists the helpers it needs (``derive=("shapes",)``); each takes the variables extracted so
far and returns new ones. They never raise: a part that cannot be parsed yields no sentence.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Vars = dict[str, Any]

_INT = re.compile(r"-?\d+")


def parse_shape(text: Any) -> tuple[int, ...] | None:
    """``torch.Size([64, 8])``, ``(64, 256)``, ``[64, 8]``, ``(512,)`` -> a tuple of ints."""
    if text is None:
        return None
    s = str(text).strip()
    if not s:
        return None
    body = s
    m = re.search(r"[\[(]([^\[\]()]*)[\])]", s)
    if m:
        body = m.group(1)
    nums = _INT.findall(body)
    if not nums and body.strip() not in ("", ","):
        return None
    return tuple(int(n) for n in nums)


def fmt_shape(shape: tuple[int, ...] | None) -> str:
    if shape is None:
        return "?"
    if len(shape) == 1:
        return f"({shape[0]},)"
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _gate_story(name: str, exp: tuple[int, ...], got: tuple[int, ...]) -> str:
    """LSTM kernels hold 4 gates (Keras (in, 4u), torch (4h, in)), GRU 3: say it in units."""
    low = name.lower()
    gates, cls = (4, "LSTM") if "lstm" in low else (3, "GRU") if "gru" in low else (0, "")
    if not gates or len(exp) != len(got):
        return ""
    axes = [i for i in range(len(exp)) if exp[i] != got[i]]
    if not axes:
        return ""
    # the gate axis is the one that differs and is a multiple of the gate count in both
    for ax in axes:
        e, g = exp[ax], got[ax]
        if e % gates == 0 and g % gates == 0:
            eu, gu = e // gates, g // gates
            torch_style = ax == 0 and ("weight_" in low or "bias_" in low)
            arg = "hidden_size" if torch_style else "units"
            # a recurrent kernel also changes its other axis; a kernel's input axis is the previous layer
            return (f"{fmt_shape(got)} in the file = {gates}x{gu} {arg}; your model has {fmt_shape(exp)} = "
                    f"{gates}x{eu} {arg}: the file was saved with {cls}({arg}={gu}), your code builds "
                    f"{cls}({arg}={eu}).")
    return ""


def _embed_story(name: str, exp: tuple[int, ...], got: tuple[int, ...]) -> str:
    low = name.lower()
    if not any(k in low for k in ("embed", "wte", "word_embeddings", "lm_head", "tok_emb")):
        return ""
    if len(exp) == 2 and len(got) == 2 and exp[1] == got[1] and exp[0] != got[0]:
        return (f"vocabulary {got[0]} in the file, {exp[0]} in your model: the embedding was resized "
                f"(tokens added) on one side; call `model.resize_token_embeddings({got[0]})` (or build "
                f"with vocab_size={got[0]}) before loading.")
    return ""


def shapes(v: Vars) -> Vars:
    exp = parse_shape(v.get("expected_shape"))
    got = parse_shape(v.get("found_shape"))
    out: Vars = {}
    if exp is None or got is None:
        return out
    out["expected_shape"] = fmt_shape(exp)
    out["found_shape"] = fmt_shape(got)
    name = " ".join(str(v.get(k) or "") for k in ("key", "variable", "weight", "layer", "object_class"))
    story = _gate_story(name, exp, got) or _embed_story(name, exp, got)
    if not story:
        story = f"the file holds {fmt_shape(got)}, your model expects {fmt_shape(exp)}."
        if len(exp) == 2 and len(got) == 2 and exp[0] == got[0] and exp[1] != got[1]:
            story += f" The output size differs ({got[1]} vs {exp[1]}): units/out_features changed."
        elif len(exp) == 2 and len(got) == 2 and exp[1] == got[1] and exp[0] != got[0]:
            story += f" The first axis differs ({got[0]} vs {exp[0]})."
        elif exp == tuple(reversed(got)):
            story += " It is the transpose: a Keras kernel is (in, out), a torch Linear weight is (out, in)."
    out["shape_story"] = story
    return out


_KEY = re.compile(r"\"([^\"]*)\"|'([^']*)'")


def _key_list(text: Any) -> list[str]:
    if not text:
        return []
    found = [a or b for a, b in _KEY.findall(str(text))]
    if found:
        return found
    return [k.strip() for k in str(text).strip("[]{} .").split(",") if k.strip()]


def _preview(keys: list[str], n: int = 4) -> str:
    if not keys:
        return ""
    shown = ", ".join(keys[:n])
    return shown + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def _common_prefix_story(missing: list[str], unexpected: list[str]) -> str:
    if not missing or not unexpected:
        return ""
    ms, us = set(missing), set(unexpected)
    for known in ("module.", "_orig_mod.", "model.", "base_model.model.", "_orig_mod.module.", "module._orig_mod."):
        if {k[len(known):] for k in unexpected if k.startswith(known)} >= ms and all(
            k.startswith(known) for k in unexpected
        ):
            origin = {"module.": "nn.DataParallel / DistributedDataParallel",
                      "_orig_mod.": "torch.compile (OptimizedModule)"}.get(known, "a wrapper model")
            return (f"Every unexpected key is a missing key with the prefix '{known}': the file was saved from "
                    f"a model wrapped by {origin}. Strip the prefix: "
                    f"`torch.nn.modules.utils.consume_prefix_in_state_dict_if_present(sd, '{known}')`.")
        if {k[len(known):] for k in missing if k.startswith(known)} >= us and all(
            k.startswith(known) for k in missing
        ):
            return (f"Every missing key is an unexpected key with the prefix '{known}': your model is wrapped "
                    f"and the file is not. Load into the inner model (`model.module` / `model._orig_mod`), "
                    f"or add the prefix to the file's keys.")
    # same suffixes under another first component: a renamed submodule
    def split(k: str) -> tuple[str, str]:
        head, _, tail = k.partition(".")
        return head, tail

    m_heads = {split(k)[0] for k in ms}
    u_heads = {split(k)[0] for k in us}
    if len(m_heads) == 1 and len(u_heads) == 1:
        (mh,), (uh,) = m_heads, u_heads
        if {split(k)[1] for k in ms} == {split(k)[1] for k in us}:
            return (f"The same parameters exist under another name: '{uh}' in the file is '{mh}' in your "
                    f"model. Rename the keys: `sd = {{k.replace('{uh}.', '{mh}.', 1): v for k, v in sd.items()}}`.")
    return ""


def keys(v: Vars) -> Vars:
    missing = _key_list(v.get("missing"))
    unexpected = _key_list(v.get("unexpected"))
    out: Vars = {
        "missing_keys": missing,
        "unexpected_keys": unexpected,
        "missing_count": len(missing),
        "unexpected_count": len(unexpected),
        "missing_preview": _preview(missing),
        "unexpected_preview": _preview(unexpected),
    }
    out["prefix_story"] = _common_prefix_story(missing, unexpected)
    return out


def torch_global(v: Vars) -> Vars:
    """The allowlist call for one ``Unsupported global: GLOBAL x.y``, with the numpy rename trap."""
    full = str(v.get("global") or "").strip().rstrip(".")
    if not full:
        return {}
    if "." not in full:
        full = f"builtins.{full}"
    module, _, attr = full.rpartition(".")
    out: Vars = {"global": full, "global_module": module, "global_name": attr}
    if module == "__main__":
        out["allow_call"] = (f"from my_models import {attr}   # the module where {attr} now lives\n"
                             f"    torch.serialization.add_safe_globals([({attr}, '__main__.{attr}')])")
        out["global_note"] = (f"`{attr}` was defined in the training script itself (`__main__`). Only a process "
                              f"that defines the same class can rebuild it; move it to a module and save "
                              f"`model.state_dict()` instead of the whole object.")
    elif module.startswith(("numpy.core", "numpy._core")):
        rest = module.split(".", 2)[2] if module.count(".") >= 2 else ""
        new_name = ".".join(p for p in ("numpy._core", rest, attr) if p)
        old_name = ".".join(p for p in ("numpy.core", rest, attr) if p)
        out["allow_call"] = (f"import numpy\n"
                             f"    obj = {new_name}   # numpy 2; with numpy 1: {old_name}\n"
                             f"    torch.serialization.add_safe_globals([(obj, '{full}')])")
        out["global_note"] = (f"numpy 2 renamed `numpy.core` to `numpy._core`: a file saved under numpy 1 names "
                              f"`{old_name}`, one saved under numpy 2 names `{new_name}`. This file names "
                              f"`{full}`. torch matches the name written in the file, so allowlist the object "
                              f"under that exact name with an `(object, '{full}')` tuple, which works whichever "
                              f"numpy is installed. Better: keep numpy arrays and scalars out of checkpoints "
                              f"(store tensors or Python numbers).")
    else:
        out["allow_call"] = (f"from {module} import {attr}\n"
                             f"    torch.serialization.add_safe_globals([{attr}])")
        out["global_note"] = f"`{full}` is not one of the types torch trusts by default (tensors, dicts, lists, numbers)."
    return out


_OPERANDS = {
    "149": "opcode FRAME: the pickle was written with protocol 4 or 5 (plain `pickle.dump`, or "
           "`torch.save(..., pickle_protocol=4)`), which the weights-only unpickler does not read",
    "118": "byte 'v': the file starts `version https://git-lfs...`, a git-lfs pointer, not the weights",
    "60": "byte '<': the file is an HTML page (a login or error page saved instead of the weights)",
    "72": "byte 'H' of the HDF5 signature: this is a Keras/HDF5 file, not a PyTorch checkpoint",
    "123": "byte '{': the file is JSON text (a config or an index), not a checkpoint",
    "140": "opcode SHORT_BINUNICODE: a protocol 4+ pickle",
    "147": "opcode STACK_GLOBAL: a protocol 4+ pickle",
    "148": "opcode MEMOIZE: a protocol 4+ pickle",
}


def operand(v: Vars) -> Vars:
    op = str(v.get("operand") or "").strip()
    return {"operand_meaning": _OPERANDS.get(op, f"byte/opcode {op} is not one the weights-only unpickler reads")}


def object_list(v: Vars) -> Vars:
    text = str(v.get("objects") or "")
    names = re.findall(r"<(\w+) name=([^,>]+)", text)
    out: Vars = {"failed_objects": [f"{cls} {name}" for cls, name in names]}
    out["failed_preview"] = ", ".join(f"{cls} '{name}'" for cls, name in names) or str(v.get("object_class") or "")
    return out


_STATUSES = ("UNEXPECTED", "MISSING", "MISMATCH", "CONVERSION")


def load_report(v: Vars) -> Vars:
    """Rows of the transformers 5 LOAD REPORT table: ``key | STATUS | details``."""
    table = str(v.get("table") or "")
    rows: dict[str, list[str]] = {s: [] for s in _STATUSES}
    tokens = [t.strip(" -=+─━┃│") for t in re.split(r"[|│┃]", table)]
    for i, tok in enumerate(tokens):
        if tok in _STATUSES and i > 0 and tokens[i - 1] and tokens[i - 1].lower() != "key":
            rows[tok].append(tokens[i - 1])
    if not any(rows.values()):
        for key, status in re.findall(r"(\S+)\s+(UNEXPECTED|MISSING|MISMATCH|CONVERSION)\b", table):
            rows[status].append(key)
    out: Vars = {f"{s.lower()}_rows": rows[s] for s in _STATUSES}
    parts = [f"{len(rows[s])} {s}" for s in _STATUSES if rows[s]]
    out["report_counts"] = ", ".join(parts) or "no rows parsed"
    stories = []
    if rows["MISSING"]:
        stories.append(f"MISSING ({_preview(rows['MISSING'], 3)}): newly initialised, not loaded")
    if rows["UNEXPECTED"]:
        stories.append(f"UNEXPECTED ({_preview(rows['UNEXPECTED'], 3)}): in the checkpoint, ignored")
    if rows["MISMATCH"]:
        stories.append(f"MISMATCH ({_preview(rows['MISMATCH'], 3)}): different shapes")
    out["report_story"] = "; ".join(stories)
    return out


def key_list(v: Vars) -> Vars:
    """A Python-list-like group of names (``['a', 'b']`` or ``{'a', 'b'}``) -> preview and count."""
    names = _key_list(v.get("names"))
    return {"name_list": names, "name_count": len(names), "names_preview": _preview(names, 6)}


def untraced(v: Vars) -> Vars:
    names = [n.strip() for n in str(v.get("functions") or "").split(",") if n.strip()]
    layers: list[str] = []
    for n in names:
        m = re.match(r"(.+?)_layer_call", n)
        base = m.group(1) if m else n
        if base not in layers:
            layers.append(base)
    return {"function_list": names, "untraced_layers": ", ".join(layers) or "?"}


def optimizer_counts(v: Vars) -> Vars:
    live, saved = int(v.get("live_count") or -1), int(v.get("saved_count") or -1)
    if live in (0, 2) and saved > live:
        why = (f"{live} variables means your optimizer was never built (at most `iteration` and "
               f"`learning_rate`): the model was compiled but not trained before loading, while the file "
               f"holds a trained optimizer ({saved} variables: 2 counters plus the slots, e.g. Adam's m and "
               f"v for each weight).")
    elif saved in (0, 2) and live > saved:
        why = (f"The file was saved before the optimizer was built ({saved} variables), your optimizer is "
               f"already trained ({live}).")
    else:
        why = ("The counts differ: a different optimizer class, a different number of trainable weights, "
               "or mixed precision (LossScaleOptimizer adds variables) on one side.")
    return {"optimizer_story": why}


def var_counts(v: Vars) -> Vars:
    if str(v.get("received_vars")) == "0":
        return {"count_story": (
            "Received 0 means the file has no variables at this layer's path: paths are built from class "
            "names and counters (dense, dense_1, ...), so a layer added, removed, reordered or of another "
            "class (GRU instead of LSTM) shifts them; a file from another Keras version can also differ.")}
    return {"count_story": (
        f"The layer has {v.get('expected_vars')} variables, the file holds {v.get('received_vars')} for it: "
        "a flag that adds or removes weights changed (use_bias, a GRU's reset_after, a Bidirectional wrapper).")}


def keras_class(v: Vars) -> Vars:
    name = str(v.get("class_name") or "")
    short = name.split(">")[-1].split(".")[-1] or "MyLayer"
    note = ""
    if short == "Policy":
        note = (" 'Policy' is tf.keras's mixed-precision dtype policy: this file was written by tf.keras 2.x "
                "with mixed precision, and Keras 3 calls it DTypePolicy. Rewrite each layer's `dtype` in the "
                "saved config to the policy name, or rebuild the model in code and `load_weights`.")
    return {"class_short": short, "class_note": note}


def keras_unknown(v: Vars) -> Vars:
    """'Unknown layer: NotEqual' is usually a custom class; for a keras.ops node it is the .h5 format."""
    from ckptdoctor.readers.keras_config import is_keras_op

    kind, name = str(v.get("kind") or "<kind>"), str(v.get("class_name") or "<class_name>")
    if kind == "layer" and is_keras_op(name, None):
        mask = " (NotEqual: the mask of an Embedding with mask_zero=True)" if name == "NotEqual" else ""
        return {
            "unknown_cause": (f"'{name}' is not a custom layer: it is a keras.ops operation that Keras 3 recorded "
                              f"as a node of the functional model{mask}. The legacy .h5 format stores no module "
                              "for it, and the .h5 loader looks class names up among layers only."),
            "unknown_fix": ("Save the model in the native format: model.save('model.keras'). To use this .h5, "
                            "build the model in code and call model.load_weights('model.h5'), then save it as "
                            ".keras. `ckptdoctor inspect model.h5` reports it as F205."),
        }
    docs = (" When the name is a keras.ops operation (NotEqual, Tanh), the model was saved as .h5 with an "
            "operation node in its graph: see F205." if name == "<class_name>" else "")
    return {
        "unknown_cause": (f"A custom {kind} defined in the training script and not passed or registered at load "
                          f"time.{docs}"),
        "unknown_fix": ("Pass the class when loading:\n"
                        f"    with keras.saving.custom_object_scope({{'{name}': {name}}}):\n"
                        "        model = keras.models.load_model('chatbot_model.h5')\n"
                        "or decorate it with `@keras.saving.register_keras_serializable()` and import it first."),
    }


HELPERS: dict[str, Callable[[Vars], Vars]] = {
    "shapes": shapes,
    "keys": keys,
    "torch_global": torch_global,
    "operand": operand,
    "object_list": object_list,
    "load_report": load_report,
    "key_list": key_list,
    "untraced": untraced,
    "optimizer_counts": optimizer_counts,
    "var_counts": var_counts,
    "keras_class": keras_class,
    "keras_unknown": keras_unknown,
}


# helpers that give sensible text without a message's variables (the general case), for the docs page
DOC_HELPERS = frozenset({"keras_unknown"})


def run(names: tuple[str, ...], variables: Vars) -> Vars:
    out = dict(variables)
    for name in names:
        try:
            out.update(HELPERS[name](out))
        except (ValueError, TypeError, IndexError):  # a part we could not parse: no sentence, no crash
            continue
    return out
