"""Compare a file (Snapshot) with the model's code (ModelSpec) for PyTorch state_dicts: align names,
then report what is missing, unexpected or reshaped, each finding with what ``load_state_dict`` will do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ckptdoctor.checking import behavior as B
from ckptdoctor.checking.align import Alignment, align, owner_of
from ckptdoctor.checking.explain_shapes import (
    changed_values,
    describe_change,
    infer_torch,
    knock_on,
    vocab_change,
)
from ckptdoctor.checking.hf import hf_config, prefix_story
from ckptdoctor.checking.tied import explain_tied, tie_groups
from ckptdoctor.diagnostics import Diagnostic, Fix, Severity
from ckptdoctor.rules import architecture as A
from ckptdoctor.snapshot import Snapshot
from ckptdoctor.spec import ModelSpec

Shape = tuple[int, ...]

# top-level keys under which training scripts nest the model's state_dict
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model_state", "model", "net", "network", "module",
                   "weights", "params", "ema", "model_ema")


@dataclass
class Comparison:
    diagnostics: list[Diagnostic] = field(default_factory=list)
    predictions: list[B.Prediction] = field(default_factory=list)
    alignment: Alignment | None = None
    fix_plan: list[Fix] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    selected_key: str | None = None


def _keys_preview(keys: list[str], n: int = 4) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def select_state_dict(snap: Snapshot, model_names: set[str], key: str | None) -> tuple[dict[str, Shape], str | None]:
    """The tensors ``load_state_dict`` would be given: the whole file, or ``ckpt[key]`` of a training checkpoint."""
    shapes = {t.name: tuple(t.shape) for t in snap.tensors}
    if key:
        p = key + "."
        sub = {n[len(p):]: s for n, s in shapes.items() if n.startswith(p)}
        return sub, key
    if any(n in model_names for n in shapes):
        return shapes, None
    top = snap.structure if isinstance(snap.structure, dict) else {}
    best, best_hits = None, 0
    for cand in STATE_DICT_KEYS:
        if cand in top and isinstance(top[cand], dict) and (len(top) > 1 or cand != "model"):
            p = cand + "."
            hits = sum(1 for n in shapes if n.startswith(p) and n[len(p):] in model_names)
            if hits > best_hits:
                best, best_hits = cand, hits
    if best is None:
        return shapes, None
    p = best + "."
    return {n[len(p):]: s for n, s in shapes.items() if n.startswith(p)}, best


def compare_torch(snap: Snapshot, spec: ModelSpec, key: str | None = None) -> Comparison:
    out = Comparison()
    persistent = [e for e in spec.state if e.persistent and e.kind != "extra"]
    model_shapes = {e.name: tuple(e.shape) for e in persistent}
    non_persistent = {e.name for e in spec.state if not e.persistent}
    owner_class = {e.name: e.owner_class for e in spec.state}
    file_shapes, selected = select_state_dict(snap, set(model_shapes), key)
    out.selected_key = selected
    if selected and not key:
        others = sorted({n.split(".", 1)[0] for n in (t.name for t in snap.tensors)} - {selected})
        top = sorted(snap.structure) if isinstance(snap.structure, dict) else others
        out.diagnostics.append(A.TRAINING_CKPT.diag(
            f"the model's weights are under the key {selected!r} of a training checkpoint "
            f"(top-level entries: {', '.join(map(str, top))})",
            subject=selected, expected="a state_dict", found=f"a dict with {len(top)} entries",
            framework_behavior="model.load_state_dict(torch.load(f)) reports every key as missing; "
                               f"model.load_state_dict(torch.load(f)[{selected!r}]) is what was meant",
            fix=f"model.load_state_dict(torch.load(path)[{selected!r}])", path=snap.path))

    strict = B.torch_load_state_dict(file_shapes, model_shapes, spec.class_name, strict=True)
    loose = B.torch_load_state_dict(file_shapes, model_shapes, spec.class_name, strict=False)
    out.predictions = [strict, loose]
    if snap.format == "safetensors" and not selected:
        import os

        out.predictions.append(B.safetensors_load_model(file_shapes, model_shapes, tie_groups(spec), spec.class_name,
                                                        source=os.path.basename(snap.path)))
    cfg = hf_config(snap) if snap.path else None
    behaviour = _torch_behaviour_text(strict, loose)

    al = align(file_shapes, model_shapes, sep=".")
    out.alignment = al
    reverse = {f: m for m, f in al.pairs.items()}

    if al.prefix is not None:
        r = al.prefix
        samples = [(f, reverse[f]) for f in file_shapes if f in reverse and f != reverse[f]][:2]
        if r.action == "strip":
            msg = f"all {r.explained} matching keys carry the prefix {r.prefix!r}"
            fix = (f"strip it: torch.nn.modules.utils.consume_prefix_in_state_dict_if_present(sd, {r.prefix!r}), "
                   "or save the unwrapped model's state_dict()")
        else:
            msg = f"the model's keys carry the prefix {r.prefix!r} that the file's {r.explained} keys lack"
            fix = f"add it: sd = {{{r.prefix!r} + k: v for k, v in sd.items()}}, or load into the unwrapped model"
        story, hf_behaviour = prefix_story(r.prefix, r.action, cfg, spec.class_name)
        if story:
            msg += f": {story}"
        elif r.cause:
            msg += f": {r.cause}"
        plan = Fix(kind=f"{r.action}-prefix", description=f"{r.action} {r.prefix!r} on every key", data={"prefix": r.prefix})
        out.fix_plan.append(plan)
        out.diagnostics.append(A.PREFIX.diag(
            msg, subject=r.prefix, expected=samples[0][1] if samples else None, found=samples[0][0] if samples else None,
            framework_behavior=behaviour + " With strict=False nothing at all is loaded and nothing is raised."
                               + hf_behaviour,
            fix=fix, fix_plan=plan, path=snap.path, details={"keys_explained": r.explained, "examples": samples}))

    for rn in al.renames:
        mapping = rn.mapping
        plan = Fix(kind="rename-keys", description=f"rename {rn.old!r} to {rn.new!r}", data={"mapping": mapping})
        out.fix_plan.append(plan)
        out.diagnostics.append(A.RENAMED.diag(
            f"the file's layer {rn.old!r} is your model's {rn.new!r}: same {len(mapping)} tensor(s), same shapes, same order",
            subject=rn.new, expected=rn.new, found=rn.old,
            framework_behavior=behaviour + f" With strict=False, {rn.new!r} silently keeps its initial values.",
            fix=f"rename the keys before loading ({_keys_preview([f'{a} -> {b}' for a, b in mapping.items()], 2)}), "
                f"or name the attribute {rn.old!r} again", fix_plan=plan, path=snap.path,
            details={"mapping": mapping}))
    if al.conventions:
        mapping = {c.file_key: c.model_key for c in al.conventions}
        plan = Fix(kind="rename-keys", description="rename convention-named tensors", data={"mapping": mapping})
        out.fix_plan.append(plan)
        out.diagnostics.append(A.RENAMED.diag(
            f"{len(mapping)} tensor(s) use another naming convention: {al.conventions[0].why}",
            subject=al.conventions[0].model_key, expected=al.conventions[0].model_key, found=al.conventions[0].file_key,
            framework_behavior=behaviour, fix="rename the keys before loading", fix_plan=plan, path=snap.path,
            details={"mapping": mapping}))

    # shape mismatches on aligned pairs, one finding per layer
    mismatched_owners: dict[str, list[str]] = {}
    for m in model_shapes:  # model order, so an upstream change is seen before its knock-on effects
        if m not in al.pairs:
            continue
        fs, ms = file_shapes[al.pairs[m]], model_shapes[m]
        if fs != ms and not (ms == () and fs == (1,)):
            mismatched_owners.setdefault(owner_of(m), []).append(m)
    changes: set[tuple[int, int]] = set()
    vocab_diags: dict[tuple[int, int], Diagnostic] = {}
    for owner, keys in mismatched_owners.items():
        cls = owner_class.get(keys[0], "")
        leaves_file = {m[len(owner) + 1 if owner else 0:]: file_shapes[al.pairs[m]]
                       for m in al.pairs if owner_of(m) == owner}
        leaves_model = {m[len(owner) + 1 if owner else 0:]: model_shapes[m] for m in al.pairs if owner_of(m) == owner}
        saved_h, model_h = infer_torch(cls, leaves_file), infer_torch(cls, leaves_model)
        first = keys[0]
        fs, ms = file_shapes[al.pairs[first]], model_shapes[first]
        vocab = _owner_vocab_change(keys, file_shapes, model_shapes, al.pairs)
        per_tensor = {k: {"file": list(file_shapes[al.pairs[k]]), "model": list(model_shapes[k])} for k in keys}
        sizes = "; ".join(f"{k}: file {list(file_shapes[al.pairs[k]])}, model {list(model_shapes[k])}" for k in keys[:3])
        plain_behaviour = ("load_state_dict raises RuntimeError 'size mismatch for " + first +
                           "' with strict=True AND with strict=False")
        if vocab and (cls in ("Embedding", "EmbeddingBag") or vocab in changes or _looks_like_head(first)):
            changes.add(vocab)
            if vocab in vocab_diags:  # the output head follows the embedding: one cause, one finding
                d = vocab_diags[vocab]
                d.details["tensors"].update(per_tensor)
                names = list(d.details["tensors"])
                d.message = f"vocabulary {vocab[0]} in the file, {vocab[1]} in the model ({' and '.join(names)})"
                d.details["owners"].append(owner or first)
                continue
            hf = spec.facts.get("hf_model", False) or cfg is not None
            if hf:
                fix = f"call model.resize_token_embeddings({vocab[0]}) before loading"
            elif vocab[0] > vocab[1]:
                fix = (f"build the model with a vocabulary of {vocab[0]}: the embedding was resized after the "
                       f"code's {vocab[1]} (e.g. tokens added, resize_token_embeddings({vocab[0]})); resize before loading")
            else:
                fix = f"build the model with the file's vocabulary size {vocab[0]}, or use the tokenizer it was trained with"
            if hf:
                fix += (" (it resizes the input embedding and the output head together; then load, e.g. with "
                        "from_pretrained or load_state_dict)")
            vocab_diags[vocab] = A.VOCAB.diag(
                f"vocabulary {vocab[0]} in the file, {vocab[1]} in the model ({first})",
                subject=owner or first, expected=list(ms), found=list(fs), framework_behavior=plain_behaviour,
                fix=fix, path=snap.path, details={"tensors": per_tensor, "owners": [owner or first],
                                                  "file_vocab": vocab[0], "model_vocab": vocab[1]})
            out.diagnostics.append(vocab_diags[vocab])
            continue
        story = describe_change(saved_h, model_h)
        own = changed_values(saved_h, model_h)
        if story and own and own <= changes:  # e.g. Linear in_features follows the LSTM hidden size
            story = None
        knock = not story and all(knock_on(file_shapes[al.pairs[k]], model_shapes[k], changes) for k in keys)
        changes |= own
        if story:
            msg = story
        elif knock:
            msg = f"{cls or 'layer'} {owner!r} changes shape only as a consequence of the change above ({sizes})"
        else:
            msg = f"{cls or 'layer'} {owner!r} has other shapes: {sizes}"
        fix = (f"build {owner!r} as {saved_h.call()}" if saved_h and story else
               "fix the upstream layer; this one follows" if knock else
               "build the layer with the shapes of the file, or retrain it")
        out.diagnostics.append(A.SHAPE.diag(
            msg, subject=owner or first, expected=list(ms), found=list(fs), framework_behavior=plain_behaviour,
            fix=fix, path=snap.path, severity=Severity.ERROR,
            details={"tensors": per_tensor, "saved_hyperparameters": saved_h.params if saved_h else None,
                     "model_hyperparameters": model_h.params if model_h else None, "knock_on": knock}))

    # keys the file has that the model registers as non-persistent buffers
    np_hits = [f for f in al.unexpected if (al.prefix.apply(f) if al.prefix else f) in non_persistent]
    if np_hits:
        plan = Fix(kind="drop-keys", description="drop non-persistent buffers", data={"keys": np_hits})
        out.fix_plan.append(plan)
        out.diagnostics.append(A.NON_PERSISTENT.diag(
            f"{len(np_hits)} saved tensor(s) are non-persistent buffers in your model: {_keys_preview(np_hits)}",
            subject=np_hits[0], expected="not saved (persistent=False)", found="saved",
            framework_behavior=behaviour, fix="drop the keys before loading", fix_plan=plan, path=snap.path,
            details={"keys": np_hits}))
    unexpected = [f for f in al.unexpected if f not in np_hits]

    tied = explain_tied(snap, spec, al, file_shapes, model_shapes, cfg)
    out.diagnostics.extend(tied.diagnostics)
    for d in tied.diagnostics:
        if d.fix_plan is not None:
            out.fix_plan.append(d.fix_plan)
    missing_left = [m for m in al.missing if m not in tied.handled]

    amb_note = {}
    for amb in al.ambiguities:
        for mg in amb.model_groups:
            amb_note[mg] = amb.file_groups
    for owner, keys in _group(missing_left).items():
        hint = ""
        if owner in amb_note:
            hint = f" (the file has layers with the same shapes: {', '.join(amb_note[owner])}; which one was renamed is ambiguous)"
        cls = owner_class.get(keys[0], "")
        out.diagnostics.append(A.MISSING.diag(
            f"{cls + ' ' if cls else ''}{owner!r}: {len(keys)} tensor(s) not in the file{hint}",
            subject=owner or keys[0], expected=_keys_preview(keys), found=None,
            framework_behavior=_missing_behaviour(strict, loose),
            fix="load the file this model was saved to, or initialise this layer on purpose and load with "
                "strict=False (then check the returned missing_keys)", path=snap.path, details={"keys": keys}))
    drop = list(unexpected)
    if drop:
        plan = Fix(kind="drop-keys", description="drop tensors the model does not use", data={"keys": drop})
        out.fix_plan.append(plan)
    for owner, keys in _group(unexpected).items():
        out.diagnostics.append(A.UNEXPECTED.diag(
            f"{owner!r}: {len(keys)} saved tensor(s) that your model does not have",
            subject=owner or keys[0], expected=None, found=_keys_preview(keys),
            framework_behavior=_unexpected_behaviour(strict, loose),
            fix=f"if the layer is gone on purpose, drop these keys (or load with strict=False); otherwise add "
                f"{owner!r} back to the model", fix_plan=Fix(kind="drop-keys", description=f"drop {owner!r}",
                                                            data={"keys": keys}),
            path=snap.path, details={"keys": keys}))
    return out


def _owner_vocab_change(keys: list[str], file_shapes: dict[str, Shape], model_shapes: dict[str, Shape],
                        pairs: dict[str, str]) -> tuple[int, int] | None:
    """(file rows, model rows) when a layer differs only in its vocabulary dimension: an embedding, or an
    output head whose weight [V, H] and bias [V] both follow the vocabulary."""
    two_d = [k for k in keys if len(model_shapes[k]) == 2]
    if len(two_d) != 1:
        return None
    vocab = vocab_change(file_shapes[pairs[two_d[0]]], model_shapes[two_d[0]])
    if vocab is None:
        return None
    for k in keys:
        if k != two_d[0] and (file_shapes[pairs[k]], model_shapes[k]) != ((vocab[0],), (vocab[1],)):
            return None
    return vocab


def _looks_like_head(key: str) -> bool:
    return any(h in key for h in ("lm_head", "embed_out", "output.weight", "decoder.weight", "classifier"))


def _group(keys: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k in keys:
        out.setdefault(owner_of(k), []).append(k)
    return out


def _torch_behaviour_text(strict: B.Prediction, loose: B.Prediction) -> str:
    s = f"strict=True: {strict.outcome}"
    if strict.outcome == B.ERROR:
        s = "load_state_dict(strict=True) raises RuntimeError"
    return s + "." if not s.endswith(".") else s


def _missing_behaviour(strict: B.Prediction, loose: B.Prediction) -> str:
    s = "load_state_dict(strict=True) raises RuntimeError 'Missing key(s) in state_dict'"
    if loose.outcome == B.ERROR:
        return s + "; strict=False still raises because of a size mismatch"
    return s + "; with strict=False these tensors silently keep their initial values"


def _unexpected_behaviour(strict: B.Prediction, loose: B.Prediction) -> str:
    s = "load_state_dict(strict=True) raises RuntimeError 'Unexpected key(s) in state_dict'"
    if loose.outcome == B.ERROR:
        return s + "; strict=False still raises because of a size mismatch"
    return s + "; with strict=False these tensors are dropped silently"


def predictions_json(preds: list[B.Prediction]) -> list[dict[str, Any]]:
    return [p.to_json() for p in preds]
