"""Name alignment: find the ONE reason a file's keys and a model's keys disagree, instead of listing
200 missing and 200 unexpected keys.

Stages, each working on what the previous left unmatched:
1. exact names;
2. one wrapper prefix for the whole file (``module.``, ``_orig_mod.``, ``model.``, ``base_model.model.``),
   stripped from the file's keys or added to them, inferred from the data (whichever prefix explains
   the most keys), so the fix is one mapping;
3. naming conventions of a single tensor (``gamma``/``beta`` -> ``weight``/``bias``, old
   ``weight_g``/``weight_v`` weight norm -> ``parametrizations.weight.original0/1``);
4. renamed layers: a group of tensors (one owner module/layer) with the same leaf names and shapes, in
   the same order, under another name (``fc`` -> ``head``, Keras ``dense`` -> ``dense_1``).

Pure Python: names and shapes in, a mapping out. No framework import.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

Shape = tuple[int, ...]

KNOWN_PREFIXES: dict[str, str] = {
    "module.": "nn.DataParallel / DistributedDataParallel wrapper (the wrapper's state_dict was saved)",
    "_orig_mod.": "torch.compile wrapper (the OptimizedModule's state_dict was saved)",
    "module._orig_mod.": "DataParallel/DDP around torch.compile",
    "_orig_mod.module.": "torch.compile around DataParallel/DDP",
    "model.": "a wrapper that holds the network as `.model` (Hugging Face task head, Lightning module)",
    "base_model.model.": "PEFT PeftModel wrapper",
    "base_model.model.model.": "PEFT PeftModel around a Hugging Face task model",
}

# leaf renames that are one convention for the same tensor: file leaf -> model leaf
LEAF_CONVENTIONS: dict[str, tuple[str, str]] = {
    "gamma": ("weight", "LayerNorm/BatchNorm `gamma` is torch's `weight` (TF-era naming)"),
    "beta": ("bias", "LayerNorm/BatchNorm `beta` is torch's `bias` (TF-era naming)"),
    "weight_g": ("parametrizations.weight.original0",
                 "old `torch.nn.utils.weight_norm` keys; the new parametrization stores them as original0/1"),
    "weight_v": ("parametrizations.weight.original1",
                 "old `torch.nn.utils.weight_norm` keys; the new parametrization stores them as original0/1"),
}


@dataclass
class PrefixRule:
    action: str  # "strip" (file keys carry it, the model's do not) or "add" (the model's keys carry it)
    prefix: str
    explained: int  # keys it makes match
    cause: str = ""

    def apply(self, file_key: str) -> str:
        if self.action == "strip":
            return file_key[len(self.prefix):] if file_key.startswith(self.prefix) else file_key
        return self.prefix + file_key


@dataclass
class Rename:
    old: str  # owner path in the file
    new: str  # owner path in the model
    mapping: dict[str, str] = field(default_factory=dict)  # file key -> model key


@dataclass
class Convention:
    file_key: str
    model_key: str
    why: str


@dataclass
class Ambiguity:
    """Several unmatched saved groups could be the model's group (or the reverse): no safe mapping."""

    model_groups: list[str]
    file_groups: list[str]


@dataclass
class Alignment:
    pairs: dict[str, str] = field(default_factory=dict)  # model key -> file key (original spelling)
    prefix: PrefixRule | None = None
    renames: list[Rename] = field(default_factory=list)
    conventions: list[Convention] = field(default_factory=list)
    ambiguities: list[Ambiguity] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # model keys with no file key
    unexpected: list[str] = field(default_factory=list)  # file keys with no model key (original spelling)

    def mapping(self) -> dict[str, str]:
        """file key -> model key for every pair whose names differ (the machine-applicable fix)."""
        return {f: m for m, f in self.pairs.items() if f != m}


def owner_of(key: str, sep: str = ".") -> str:
    if sep == "/" and "/vars/" in key:
        return key.rpartition("/vars/")[0]
    return key.rpartition(sep)[0]


def align(file_shapes: dict[str, Shape], model_shapes: dict[str, Shape], sep: str = ".") -> Alignment:
    """Align file keys with model keys. Both dicts are in their natural order (file order, model order)."""
    out = Alignment()
    model_left = [m for m in model_shapes if m not in file_shapes]
    file_left = [f for f in file_shapes if f not in model_shapes]
    for m in model_shapes:
        if m in file_shapes:
            out.pairs[m] = m
    if not model_left and not file_left:
        return out

    # normalized name -> original file key; stages rewrite the normalized side only
    norm: dict[str, str] = {f: f for f in file_left}
    if model_left and file_left:
        rule = infer_prefix(file_left, model_left, sep)
        if rule is not None:
            out.prefix = rule
            norm = {}
            for f in file_left:
                n = rule.apply(f) if rule.action == "add" or f.startswith(rule.prefix) else f
                norm[n] = f
            model_left, norm = _take_exact(out, model_left, norm)

    if model_left and norm and sep == ".":
        model_left, norm = _conventions(out, model_left, norm, file_shapes, model_shapes)

    if model_left and norm:
        model_left, norm = _renames(out, model_left, norm, file_shapes, model_shapes, sep)

    out.missing = model_left
    out.unexpected = list(norm.values())
    return out


def infer_prefix(file_keys: list[str], model_keys: list[str], sep: str = ".") -> PrefixRule | None:
    """The single prefix (stripped from file keys, or added to them) that explains the most keys."""
    model_set, file_set = set(model_keys), set(file_keys)
    votes: Counter[tuple[str, str]] = Counter()
    for f in file_keys:
        for i, ch in enumerate(f):
            if ch == sep and f[i + 1:] in model_set:
                votes[("strip", f[: i + 1])] += 1
    for m in model_keys:
        for i, ch in enumerate(m):
            if ch == sep and m[i + 1:] in file_set:
                votes[("add", m[: i + 1])] += 1
    if not votes:
        return None
    (action, prefix), count = max(votes.items(), key=lambda kv: (kv[1], len(kv[0][1])))
    # A real wrapper prefix explains (nearly) everything; one coincidental suffix match is not a rule.
    if count * 2 <= min(len(file_keys), len(model_keys)):  # must explain more than half of the keys
        return None
    return PrefixRule(action=action, prefix=prefix, explained=count, cause=KNOWN_PREFIXES.get(prefix, ""))


def _take_exact(out: Alignment, model_left: list[str], norm: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    rest = []
    for m in model_left:
        if m in norm:
            out.pairs[m] = norm.pop(m)
        else:
            rest.append(m)
    return rest, norm


def _conventions(out: Alignment, model_left: list[str], norm: dict[str, str], file_shapes: dict[str, Shape],
                 model_shapes: dict[str, Shape]) -> tuple[list[str], dict[str, str]]:
    left = set(model_left)
    for n in list(norm):
        owner, _, leaf = n.rpartition(".")
        conv = LEAF_CONVENTIONS.get(leaf)
        if conv is None:
            continue
        target = f"{owner}.{conv[0]}" if owner else conv[0]
        if target in left and file_shapes[norm[n]] == model_shapes[target]:
            f = norm.pop(n)
            out.pairs[target] = f
            out.conventions.append(Convention(file_key=f, model_key=target, why=conv[1]))
            left.discard(target)
    return [m for m in model_left if m in left], norm


def _renames(out: Alignment, model_left: list[str], norm: dict[str, str], file_shapes: dict[str, Shape],
             model_shapes: dict[str, Shape], sep: str) -> tuple[list[str], dict[str, str]]:
    def groups(keys: list[str], shape_of: dict[str, Shape]) -> dict[str, list[tuple[str, str, Shape]]]:
        g: dict[str, list[tuple[str, str, Shape]]] = {}
        for k in keys:
            o = owner_of(k, sep)
            g.setdefault(o, []).append((k[len(o):], k, shape_of[k]))
        return g

    fgroups = groups(list(norm), {n: file_shapes[f] for n, f in norm.items()})
    mgroups = groups(model_left, model_shapes)
    fsig: dict[tuple, list[str]] = {}
    for o, items in fgroups.items():
        fsig.setdefault(tuple((leaf, s) for leaf, _, s in items), []).append(o)
    msig: dict[tuple, list[str]] = {}
    for o, items in mgroups.items():
        msig.setdefault(tuple((leaf, s) for leaf, _, s in items), []).append(o)

    left = set(model_left)
    for sig, mos in msig.items():
        fos = fsig.get(sig)
        if not fos:
            continue
        if len(fos) != len(mos):
            out.ambiguities.append(Ambiguity(model_groups=list(mos), file_groups=list(fos)))
            continue
        for fo, mo in zip(fos, mos, strict=True):  # same order in both: the i-th renamed group is the i-th
            old, new = _differing_head(fo, mo, sep)
            rename = next((r for r in out.renames if (r.old, r.new) == (old, new)), None)
            if rename is None:
                rename = Rename(old=old, new=new)
                out.renames.append(rename)
            for (_, fn, _), (_, mk, _) in zip(fgroups[fo], mgroups[mo], strict=True):
                f = norm.pop(fn)
                out.pairs[mk] = f
                rename.mapping[f] = mk
                left.discard(mk)
    return [m for m in model_left if m in left], norm


def _differing_head(a: str, b: str, sep: str) -> tuple[str, str]:
    """``layers.3.attn.q`` vs ``layers.3.attention.q`` -> (``layers.3.attn``, ``layers.3.attention``):
    drop the common trailing components, so one layer rename covers all its sublayers."""
    pa, pb = a.split(sep), b.split(sep)
    while len(pa) > 1 and len(pb) > 1 and pa[-1] == pb[-1]:
        pa.pop()
        pb.pop()
    return sep.join(pa), sep.join(pb)
