"""Tied weights: a key the model expects that is missing from the file only because it is the SAME
tensor as another key (``lm_head.weight`` tied to ``model.embed_tokens.weight``).

Savers drop tied copies: transformers ``save_pretrained`` removes the keys in ``_tied_weights_keys``
when ``tie_word_embeddings`` is true, and ``safetensors.torch.save_model`` keeps one name per shared
storage and records each dropped name in the header metadata (``{dropped: kept}``). Whether the missing
key then matters depends on the model and on the loader:

* the model ties the two (same Parameter): ``load_state_dict(strict=True)`` still raises "Missing
  key(s)", but with ``strict=False``, ``safetensors.torch.load_model`` and ``from_pretrained`` the tensor
  is loaded through its partner: a warning, not an error;
* the file was saved tied but the model does not tie them: the head stays random under
  ``strict=False`` and every loader but ``from_pretrained`` of a tying class misses it: an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ckptdoctor.checking.align import Alignment
from ckptdoctor.diagnostics import Diagnostic, Fix, Severity
from ckptdoctor.rules import architecture as A
from ckptdoctor.snapshot import Snapshot
from ckptdoctor.spec import ModelSpec

Shape = tuple[int, ...]
# modules that hold an output projection over the vocabulary (tied to the input embedding by convention)
HEAD_OWNERS = ("lm_head", "embed_out", "output", "head", "decoder", "cls.predictions.decoder", "proj_out")


@dataclass
class TiedResult:
    diagnostics: list[Diagnostic] = field(default_factory=list)
    handled: set[str] = field(default_factory=set)  # missing model keys explained here


def tie_groups(spec: ModelSpec) -> list[list[str]]:
    """Model keys that are one tensor, from ``facts["tied"]`` ({alias: first key})."""
    groups: dict[str, list[str]] = {}
    for alias, first in (spec.facts.get("tied") or {}).items():
        groups.setdefault(first, [first]).append(alias)
    return list(groups.values())


def attribute_path(key: str) -> str:
    """``model.layers.0.w.weight`` -> ``model.layers[0].w.weight``: the Python expression for a key."""
    return re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", key)


def explain_tied(snap: Snapshot, spec: ModelSpec, al: Alignment, file_shapes: dict[str, Shape],
                 model_shapes: dict[str, Shape], cfg: dict[str, Any] | None) -> TiedResult:
    from ckptdoctor.checking.hf import architecture, ties_word_embeddings

    out = TiedResult()
    partner: dict[str, list[str]] = {}
    for group in tie_groups(spec):
        for k in group:
            partner[k] = [o for o in group if o != k]
    to_model = (lambda f: al.prefix.apply(f)) if al.prefix is not None else (lambda f: f)
    aliases = snap.metadata.get("aliases") if isinstance(snap.metadata.get("aliases"), dict) else {}
    file_alias = {to_model(str(d)): to_model(str(k)) for d, k in (aliases or {}).items()}
    config_ties = ties_word_embeddings(cfg)
    config_says = ("config.json has tie_word_embeddings=true" if (cfg or {}).get("tie_word_embeddings")
                   else "config.json leaves tie_word_embeddings at its default, true")
    arch = architecture(cfg) or spec.class_name
    owner_class = {e.name: e.owner_class for e in spec.state}

    for m in al.missing:
        # a partner with another shape (a resized vocabulary) is reported as such; the tie itself still holds
        loaded = [p for p in partner.get(m, []) if p in al.pairs]
        if loaded:
            out.handled.add(m)
            out.diagnostics.append(_model_ties(snap, m, loaded[0], al.pairs[loaded[0]], file_alias, config_ties,
                                               arch, config_says))
            continue
        source, evidence = _saved_tied(m, file_alias, config_ties, config_says, al, model_shapes, file_shapes,
                                       owner_class)
        if source is not None:
            out.handled.add(m)
            out.diagnostics.append(_file_tied(snap, m, source, al.pairs[source], evidence))
    return out


def _how_dropped(m: str, file_alias: dict[str, str], config_ties: bool | None, config_says: str) -> str:
    if m in file_alias:
        return f"safetensors save_model dropped it and recorded it in the header metadata as an alias of {file_alias[m]!r}"
    if config_ties:
        return f"save_pretrained drops tied copies; {config_says}"
    return "save_pretrained and safetensors save_model keep one name per shared tensor"


def _model_ties(snap: Snapshot, m: str, p: str, p_file: str, file_alias: dict[str, str], config_ties: bool | None,
                arch: str, config_says: str) -> Diagnostic:
    safetensors = snap.format == "safetensors"
    behaviour = (f"model.load_state_dict(sd, strict=True) raises RuntimeError 'Missing key(s) in state_dict: \"{m}\"'; "
                 f"with strict=False {m!r} is listed in missing_keys but already holds the loaded {p!r} (the same "
                 "Parameter): harmless. ")
    if safetensors:
        behaviour += ("safetensors.torch.load_model(model, path) loads it without a message (it forgives names the "
                      "live model shares). ")
    if config_ties is False:
        behaviour += (f"{arch}.from_pretrained builds the model from config.json, which says tie_word_embeddings=false: "
                      f"it would NOT tie them and {m!r} would be newly initialized, with a warning.")
    else:
        behaviour += (f"{arch}.from_pretrained re-ties {m!r} to {p!r} (tie_word_embeddings) and reports nothing.")
    fix = ("load with safetensors.torch.load_model(model, path)" if safetensors else "load with from_pretrained")
    fix += (f", or with model.load_state_dict(sd, strict=False) and check that missing_keys is exactly [{m!r}] "
            "(the tie makes it loaded); strict=True cannot accept a tied checkpoint")
    return A.MISSING.diag(
        f"{m!r} is not in the file, but your model ties it to {p!r} (the same Parameter), which the file has: "
        f"the tied copy was dropped when saving ({_how_dropped(m, file_alias, config_ties, config_says)})",
        subject=m, expected=m, found=f"only {p_file!r}", framework_behavior=behaviour, fix=fix,
        severity=Severity.WARNING, path=snap.path,
        details={"tied_to": p, "file_key": p_file, "config_tie_word_embeddings": config_ties})


def _saved_tied(m: str, file_alias: dict[str, str], config_ties: bool | None, config_says: str, al: Alignment,
                model_shapes: dict[str, Shape], file_shapes: dict[str, Shape],
                owner_class: dict[str, str]) -> tuple[str | None, str]:
    """(model key whose file tensor ``m`` was tied to when saving, evidence) from the file's own record."""
    kept = file_alias.get(m)
    if kept in al.pairs:
        return kept, f"the file's safetensors metadata records {m!r} as an alias of {al.pairs[kept]!r}"
    if not config_ties or not _is_head(m):
        return None, ""
    embeds = [k for k in al.pairs if owner_class.get(k) in ("Embedding", "EmbeddingBag")
              and file_shapes[al.pairs[k]] == model_shapes[m]]
    if len(embeds) == 1:
        return embeds[0], f"{config_says}, so save_pretrained wrote the embedding only"
    return None, ""


def _is_head(key: str) -> bool:
    owner, _, leaf = key.rpartition(".")
    return leaf == "weight" and (owner in HEAD_OWNERS or owner.endswith(tuple("." + h for h in HEAD_OWNERS)))


def _file_tied(snap: Snapshot, m: str, src: str, src_file: str, evidence: str) -> Diagnostic:
    owner_m, owner_s = m.rpartition(".")[0], src.rpartition(".")[0]
    tie = f"model.{attribute_path(owner_m)}.weight = model.{attribute_path(owner_s)}.weight"
    plan = Fix(kind="copy-keys", description=f"load {src_file!r} into {m!r} as well (the tied copy)",
               data={"mapping": {src_file: m}})
    return A.MISSING.diag(
        f"{m!r} is not in the file: it was saved tied to {src!r} ({evidence}), but your model does not tie "
        "them, so nothing will load into it",
        subject=m, expected=m, found=f"only {src_file!r}",
        framework_behavior=(f"model.load_state_dict(sd, strict=True) raises RuntimeError 'Missing key(s) in "
                            f"state_dict: \"{m}\"'; with strict=False {m!r} silently keeps its RANDOM initial "
                            "values; safetensors.torch.load_model raises the same missing key (your model shares "
                            "nothing it could forgive); transformers from_pretrained re-ties only for a class whose "
                            "config says tie_word_embeddings=true"),
        fix=f"tie them in your model after building it ({tie}, as transformers' tie_weights() does), or copy "
            f"the tensor before loading: sd[{m!r}] = sd[{src_file!r}]",
        fix_plan=plan, path=snap.path, details={"tied_to": src, "file_key": src_file, "evidence": evidence})
