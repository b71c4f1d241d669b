"""Benchmark: ``check`` of a Llama-70B-shaped checkpoint against a Llama-70B-shaped model.

The model: 80 decoder layers x 9 tensors + embed_tokens, norm, lm_head = 723 tensors with the real shapes
(hidden 8192, intermediate 28672, vocab 32000, GQA with 8 KV heads: k/v_proj 1024 x 8192), built on
torch's meta device (no weight memory).

The file: a REAL safetensors file whose header declares the same 723 tensors in bfloat16, every key
prefixed with ``module.``, and layer 17's ``mlp`` renamed ``feed_forward``. Its data section is a sparse
hole (``truncate``), so the file is valid and ~138 GB long but takes almost no disk. ckptdoctor reads
only the header, as it would for a real file. If the filesystem cannot hold a sparse file, the bench
deletes the file and stops.

Measured and printed separately: reading the header, building the meta model and its spec, the
comparison itself, and the full ``check`` path (read + spec + compare + rules) as the CLI runs it, plus
the reference: a bare ``json.loads`` of the same header (``safe_open`` mmaps the whole\nfile and cannot open a 138 GB sparse file here). Interpreter start and the
``import torch`` are excluded (they happen before the timers start).

    python bench/bench_check_llama70b.py
"""

from __future__ import annotations

import json
import os
import resource
import struct
import sys
import tempfile
import time
import tracemalloc

HIDDEN, INTER, VOCAB, LAYERS, KV = 8192, 28672, 32000, 80, 1024


def llama_shapes() -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (VOCAB, HIDDEN)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        out.update({
            p + "self_attn.q_proj.weight": (HIDDEN, HIDDEN), p + "self_attn.k_proj.weight": (KV, HIDDEN),
            p + "self_attn.v_proj.weight": (KV, HIDDEN), p + "self_attn.o_proj.weight": (HIDDEN, HIDDEN),
            p + "mlp.gate_proj.weight": (INTER, HIDDEN), p + "mlp.up_proj.weight": (INTER, HIDDEN),
            p + "mlp.down_proj.weight": (HIDDEN, INTER),
            p + "input_layernorm.weight": (HIDDEN,), p + "post_attention_layernorm.weight": (HIDDEN,),
        })
    out["model.norm.weight"] = (HIDDEN,)
    out["lm_head.weight"] = (VOCAB, HIDDEN)
    return out


def llama_class():
    import torch
    from torch import nn

    class RMSNorm(nn.Module):
        def __init__(self, n: int) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(n))

    class Attn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q_proj = nn.Linear(HIDDEN, HIDDEN, bias=False)
            self.k_proj = nn.Linear(HIDDEN, KV, bias=False)
            self.v_proj = nn.Linear(HIDDEN, KV, bias=False)
            self.o_proj = nn.Linear(HIDDEN, HIDDEN, bias=False)

    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gate_proj = nn.Linear(HIDDEN, INTER, bias=False)
            self.up_proj = nn.Linear(HIDDEN, INTER, bias=False)
            self.down_proj = nn.Linear(INTER, HIDDEN, bias=False)

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.self_attn = Attn()
            self.mlp = MLP()
            self.input_layernorm = RMSNorm(HIDDEN)
            self.post_attention_layernorm = RMSNorm(HIDDEN)

    class Inner(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed_tokens = nn.Embedding(VOCAB, HIDDEN)
            self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))
            self.norm = RMSNorm(HIDDEN)

    class Llama(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = Inner()
            self.lm_head = nn.Linear(HIDDEN, VOCAB, bias=False)

    return Llama


def build_meta_model():
    """The way ``ckptdoctor check --model`` builds a TARGET: meta device, ``torch.nn.init`` skipped."""
    from ckptdoctor.frameworks.torch_spec import build_module

    model, _ = build_module(llama_class(), [], {})
    return model


def file_keys(shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    return {"module." + k.replace("layers.17.mlp.", "layers.17.feed_forward."): s for k, s in shapes.items()}


def write_sparse_safetensors(path: str, shapes: dict[str, tuple[int, ...]]) -> int:
    header, offset = {}, 0
    for k, s in shapes.items():
        n = 2
        for d in s:
            n *= d
        header[k] = {"dtype": "BF16", "shape": list(s), "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        f.truncate(8 + len(blob) + offset)  # a hole: no data blocks are written
    return 8 + len(blob) + offset


def timed(fn, repeat: int = 3):
    best, value = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t0)
    return best, value


def main() -> None:
    import torch  # noqa: F401  (imported before any timer: interpreter and torch start-up are excluded)

    import ckptdoctor
    from ckptdoctor.checking import check
    from ckptdoctor.frameworks.torch_spec import spec_from_module
    from ckptdoctor.rules import load_all

    load_all()
    shapes = llama_shapes()
    print(f"model: Llama-70B-shaped, {len(shapes)} tensors, "
          f"{sum(_numel(s) for s in shapes.values()) / 1e9:.1f} B parameters, meta device")
    fkeys = file_keys(shapes)

    tmpdir = tempfile.mkdtemp(prefix="ckptdoctor-bench-", dir="/tmp")
    path = os.path.join(tmpdir, "llama70b-module-prefix.safetensors")
    try:
        size = write_sparse_safetensors(path, fkeys)
        used = os.stat(path).st_blocks * 512
        sparse_ok = used < 64 * 1024 * 1024
        print(f"file:  {path}: {size / 1e9:.1f} GB long, {used / 1e6:.1f} MB on disk "
              f"({'sparse' if sparse_ok else 'NOT sparse'}), keys prefixed 'module.', layer 17 mlp -> feed_forward")
        if not sparse_ok:
            print("this filesystem does not keep sparse files; stopping")
            sys.exit(2)

        t_cold, _ = timed(build_meta_model, 1)  # first meta-device build pays torch's one-time dispatch warm-up
        t_build, model = timed(build_meta_model)
        t_spec, spec = timed(lambda: spec_from_module(model))
        t_read, snap = timed(lambda: ckptdoctor.read(path))
        t_cmp, report = timed(lambda: check(spec, path, snapshot=snap))

        def reference() -> int:
            # safetensors.safe_open mmaps the whole 138 GB file and fails here (ENOMEM), so the reference is
            # the minimum any tool must do: read the u64 length and json.loads the header
            with open(path, "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                return len(json.loads(f.read(n)))

        t_ref, _ = timed(reference)

        def full() -> object:
            s = ckptdoctor.read(path)
            return check(build_meta_model(), path, snapshot=s)

        t_full, full_report = timed(full)
        tracemalloc.start()  # a separate run: tracemalloc itself slows Python down
        full()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        if os.path.exists(path):
            os.remove(path)
        os.rmdir(tmpdir)

    codes = [d.code for d in report.diagnostics]
    print(f"findings: {codes} (expected one A104 for the prefix and one A105 for the rename)")
    for d in report.diagnostics:
        print(f"  {d.code} {d.subject}: {d.message[:110]}")
    print()
    print(f"read header (ckptdoctor.read)        {t_read * 1e3:8.1f} ms")
    print(f"  reference: raw json.loads(header)   {t_ref * 1e3:8.1f} ms   ratio {t_read / t_ref:5.2f}x")
    print(f"build model on meta device           {t_build * 1e3:8.1f} ms   (first build in the process: "
          f"{t_cold * 1e3:.0f} ms, torch's one-time warm-up)")
    print(f"model spec (state_dict walk)         {t_spec * 1e3:8.1f} ms")
    print(f"compare (align + rules + behaviour)  {t_cmp * 1e3:8.1f} ms")
    print(f"ckptdoctor's own work: read + spec + compare {(t_read + t_spec + t_cmp) * 1e3:8.1f} ms")
    print(f"FULL check: read + build + spec + compare {t_full * 1e3:8.1f} ms   (target < 1000 ms; best of 3)")
    print(f"machine load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"peak Python heap during full check (tracemalloc) {peak / 1e6:.1f} MB; "
          f"process max RSS (incl. torch import) {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB")
    ok = set(codes) >= {"A104", "A105"} and t_full < 1.0 and full_report is not None
    sys.exit(0 if ok else 1)


def _numel(s: tuple[int, ...]) -> int:
    n = 1
    for d in s:
        n *= d
    return n


if __name__ == "__main__":
    main()
