"""PyTorch readers (zip, legacy, TorchScript, plain pickle) against what torch itself loads from the same file."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from ckptdoctor.readers import read  # noqa: E402

CLI = [sys.executable, "-m", "ckptdoctor.cli"]


class CustomLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.randn(out_features))

    def forward(self, x):
        return torch.matmul(x, self.weight.T) + self.bias


class ChatbotModel(nn.Module):
    """The source article's model (Example 2), smaller sizes."""

    def __init__(self, vocab_size: int = 100, embedding_dim: int = 16, hidden_size: int = 32) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_size)
        self.custom_linear = CustomLinear(hidden_size, 2)
        self.fc = nn.Linear(hidden_size, 2)
        self.register_buffer("steps", torch.tensor(7))
        self.register_buffer("scratch", torch.zeros(3), persistent=False)

    def forward(self, x):
        embedded = self.embedding(x)
        lstm_out, _ = self.lstm(embedded)
        return self.custom_linear(lstm_out[:, -1, :])


def all_dtypes() -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 5, generator=g)
    return {
        "f32": base,
        "f16": base.half(),
        "bf16": base.bfloat16(),
        "f64": base.double(),
        "fp8": base.to(torch.float8_e4m3fn),
        "fp8b": base.to(torch.float8_e5m2),
        "c64": torch.complex(base, -base),
        "i64": torch.arange(10),
        "i32": torch.arange(6, dtype=torch.int32).reshape(2, 3),
        "i8": torch.tensor([-3, 4], dtype=torch.int8),
        "u8": torch.tensor([250, 3], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
    }


def views_and_tied() -> dict[str, Any]:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    emb = nn.Embedding(6, 4)
    head = nn.Linear(4, 6, bias=False)
    head.weight = emb.weight  # tied
    return {"base": base, "rows": base[1:3], "col": base[:, 2], "t": base.t(), "strided": base[::2, ::3],
            "emb.weight": emb.weight, "head.weight": head.weight}


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """name -> tensor, the same path naming ckptdoctor uses."""
    out: dict[str, Any] = {}
    if isinstance(obj, torch.Tensor):
        out[prefix or "<root>"] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{prefix}.{i}" if prefix else str(i)))
    return out


BITS = {torch.bfloat16: torch.int16, torch.float16: torch.int16, torch.float8_e4m3fn: torch.uint8,
        torch.float8_e5m2: torch.uint8}


def assert_same_values(ours: np.ndarray, theirs: Any) -> None:
    theirs = theirs.detach()
    assert tuple(ours.shape) == tuple(theirs.shape)
    if theirs.dtype in BITS:  # bit-exact: compare the raw integer representation
        assert np.array_equal(ours.view(f"u{ours.dtype.itemsize}").astype(np.int64),
                              theirs.contiguous().view(BITS[theirs.dtype]).numpy().astype(np.int64)
                              & ((1 << (8 * ours.dtype.itemsize)) - 1))
    else:
        assert np.array_equal(ours, theirs.numpy())


def torch_dtype(t: Any) -> str:
    return str(t.dtype).removeprefix("torch.")


def check_against(path: Path, expected: dict[str, Any], *, names_only_of: set[str] | None = None) -> Any:
    """Names, shapes, dtypes and values from ckptdoctor equal torch's for the same file."""
    snap = read(path)
    ours = {t.name: t for t in snap.tensors}
    wanted = set(expected) if names_only_of is None else names_only_of
    assert {n for n in ours if n in wanted or names_only_of is None} == set(expected)
    for name, tensor in expected.items():
        info = ours[name]
        assert info.shape == tuple(tensor.shape), name
        assert info.dtype == torch_dtype(tensor), name
        assert info.nbytes == tensor.numel() * tensor.element_size(), name
        assert_same_values(info.read(), tensor)
    return snap


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("torch")
    torch.manual_seed(0)
    model = ChatbotModel()
    out: dict[str, Path] = {}

    def save(name: str, obj: Any, **kw: Any) -> None:
        out[name] = d / f"{name}.pt"
        torch.save(obj, out[name], **kw)

    save("chatbot", model.state_dict())
    save("dtypes", all_dtypes())
    save("views", views_and_tied())
    save("legacy", model.state_dict(), _use_new_zipfile_serialization=False)
    save("legacy_views", views_and_tied(), _use_new_zipfile_serialization=False)
    save("whole", model)
    save("whole_legacy", model, _use_new_zipfile_serialization=False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randint(0, 100, (2, 5))).sum().backward()
    opt.step()
    save("training", {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3})
    for proto in range(0, 6):
        save(f"proto{proto}", {"w": torch.randn(3, 2), "n": [1, 2]}, pickle_protocol=proto)
    # plain pickles of tensors (storages go through torch.storage._load_from_bytes)
    for proto in (2, 4, 5):
        p = d / f"plain{proto}.pkl"
        p.write_bytes(pickle.dumps({"sd": {"w": torch.randn(2, 3), "h": torch.randn(4).half()}, "epoch": 1},
                                   protocol=proto))
        out[f"plain{proto}"] = p
    weird = d / "renamed_archive.bin"  # any archive folder name
    with zipfile.ZipFile(out["chatbot"]) as src, zipfile.ZipFile(weird, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            dst.writestr("some_other_name/" + info.filename.split("/", 1)[1], src.read(info))
    out["renamed"] = weird
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(ChatbotModel())
        out["script"] = d / "script.pt"
        scripted.save(str(out["script"]))

        class WithConst(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.lin = nn.Linear(3, 2)

            def forward(self, x):
                return self.lin(x) + torch.tensor([1.0, 2.0])

        out["trace"] = d / "trace.pt"
        torch.jit.trace(WithConst(), torch.randn(1, 3)).save(str(out["trace"]))
    return out


def test_chatbot_state_dict(files: dict[str, Path]) -> None:
    expected = torch.load(files["chatbot"], weights_only=True)
    snap = check_against(files["chatbot"], dict(expected))
    assert snap.format == "torch-zip" and snap.framework == "pytorch"
    assert "scratch" not in snap.names  # non-persistent buffers are not saved
    t = snap.tensor("custom_linear.weight")
    assert t.location == "cpu" and t.storage is not None


def test_every_dtype(files: dict[str, Path]) -> None:
    expected = torch.load(files["dtypes"], weights_only=True)
    check_against(files["dtypes"], expected)


@pytest.mark.parametrize("name", ["views", "legacy_views"])
def test_views_and_tied_weights(files: dict[str, Path], name: str) -> None:
    expected = torch.load(files[name], weights_only=True)
    snap = check_against(files[name], expected)
    for a in expected:
        for b in expected:
            same = expected[a].untyped_storage().data_ptr() == expected[b].untyped_storage().data_ptr()
            assert (snap.tensor(a).storage == snap.tensor(b).storage) == same, (a, b)
        assert snap.tensor(a).offset == expected[a].storage_offset()
        assert snap.tensor(a).strides == expected[a].stride()
    assert not snap.tensor("t").is_contiguous


def test_legacy_format(files: dict[str, Path]) -> None:
    expected = torch.load(files["legacy"], weights_only=True)
    snap = check_against(files["legacy"], dict(expected))
    assert snap.format == "torch-legacy"
    assert snap.metadata["sys_info"]["protocol_version"] == 1001


@pytest.mark.parametrize("name", ["whole", "whole_legacy"])
def test_whole_module_pickle(files: dict[str, Path], name: str) -> None:
    module = torch.load(files[name], weights_only=False)
    snap = check_against(files[name], dict(module.state_dict()))
    assert snap.metadata["model_class"].endswith(".ChatbotModel")
    user = [c for c in snap.classes if not c.builtin]
    assert {c.name for c in user} == {"ChatbotModel", "CustomLinear"}
    assert all(c.role == "pickled-class" for c in user)
    builtin = {c.name for c in snap.classes if c.builtin}
    assert {"Embedding", "LSTM", "Linear"} <= builtin


def test_training_checkpoint(files: dict[str, Path]) -> None:
    loaded = torch.load(files["training"], weights_only=True)
    snap = check_against(files["training"], flatten(loaded))
    assert "model.fc.weight" in snap.names and "optimizer.state.0.exp_avg" in snap.names
    assert snap.structure["epoch"] == 3
    assert snap.structure["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3)


@pytest.mark.parametrize("proto", range(1, 6))  # torch itself cannot load protocol 0 (text PERSID)
def test_torch_save_pickle_protocols(files: dict[str, Path], proto: int) -> None:
    expected = torch.load(files[f"proto{proto}"], weights_only=False)
    snap = check_against(files[f"proto{proto}"], flatten(expected))
    assert snap.structure["n"] == [1, 2]


@pytest.mark.parametrize("proto", [2, 4, 5])
def test_plain_pickle_of_tensors(files: dict[str, Path], proto: int) -> None:
    with open(files[f"plain{proto}"], "rb") as fh:
        expected = pickle.load(fh)  # tests may unpickle their own fixtures
    snap = check_against(files[f"plain{proto}"], flatten(expected))
    assert snap.format == "pickle"


def test_any_archive_name(files: dict[str, Path]) -> None:
    snap = check_against(files["renamed"], dict(torch.load(files["renamed"], weights_only=True)))
    assert snap.metadata["archive"] == "some_other_name"


def test_torchscript(files: dict[str, Path]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(str(files["script"]))
        traced = torch.jit.load(str(files["trace"]))
    sd = dict(scripted.state_dict())
    snap = read(files["script"])
    assert snap.format == "torchscript"
    state = {t.name: t for t in snap.tensors if t.attrs.get("kind") in ("parameter", "buffer")}
    assert set(state) == set(sd)
    for name, tensor in sd.items():
        assert state[name].shape == tuple(tensor.shape)
        assert_same_values(state[name].read(), tensor)
    assert "torch.jit.load" in snap.metadata["torchscript"]["note"]
    tsnap = read(files["trace"])
    consts = [t for t in tsnap.tensors if t.name.startswith("constants.")]
    assert [c.read().tolist() for c in consts] == [[1.0, 2.0]]
    assert {t.name for t in tsnap.tensors if t.attrs.get("kind") == "parameter"} == set(traced.state_dict())


def test_cli_json_matches_torch(files: dict[str, Path]) -> None:
    proc = subprocess.run([*CLI, "inspect", str(files["training"]), "--format", "json", "--values"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["format"] == "torch-zip"
    expected = flatten(torch.load(files["training"], weights_only=True))
    got = {t["name"]: t for t in report["tensors"]}
    assert set(got) == set(expected)
    for name, tensor in expected.items():
        assert got[name]["shape"] == list(tensor.shape)
        assert got[name]["dtype"] == torch_dtype(tensor)
        if tensor.numel() and tensor.dtype.is_floating_point:
            assert got[name]["values"]["max"] == pytest.approx(float(tensor.max()), rel=1e-6)
            assert got[name]["values"]["mean"] == pytest.approx(float(tensor.double().mean()), rel=1e-5, abs=1e-9)


# ---- bad input ----------------------------------------------------------------------------------------

def run_cli(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "inspect", str(path)], capture_output=True, text=True, check=False)


def assert_input_error(proc: subprocess.CompletedProcess[str], code: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error[{code}]"), proc.stderr


def test_truncated_zip(files: dict[str, Path], tmp_path: Path) -> None:
    data = files["chatbot"].read_bytes()
    bad = tmp_path / "cut.pt"
    bad.write_bytes(data[: len(data) // 2])
    assert_input_error(run_cli(bad), "F103")


def test_zip_missing_storage_member(files: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "missing.pt"
    with zipfile.ZipFile(files["chatbot"]) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            if not info.filename.endswith("/data/0"):
                dst.writestr(info.filename, src.read(info))
    assert_input_error(run_cli(bad), "F107")


def test_legacy_truncated(files: dict[str, Path], tmp_path: Path) -> None:
    data = files["legacy"].read_bytes()
    bad = tmp_path / "cut_legacy.pt"
    bad.write_bytes(data[:-100])
    assert_input_error(run_cli(bad), "F103")


def test_pickle_without_stop(tmp_path: Path) -> None:
    bad = tmp_path / "nostop.pkl"
    bad.write_bytes(pickle.dumps({"a": [1, 2, 3]}, protocol=2)[:-1])
    assert_input_error(run_cli(bad), "F103")


def test_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"\x00\x01\x02 this is not a checkpoint" * 10)
    assert_input_error(run_cli(bad), "F104")
    bad2 = tmp_path / "badop.pkl"
    bad2.write_bytes(b"\x80\x02\xff\xfe")
    assert_input_error(run_cli(bad2), "F104")


def test_state_dict_of_every_dtype_views_and_parameters_matches_torch(tmp_path) -> None:
    """The reader's per-tensor fields against what torch.load itself reports for the same file."""
    import torch

    from ckptdoctor.readers import read

    dtypes = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
              torch.int8, torch.uint8, torch.bool, torch.complex64, torch.float8_e4m3fn]
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd = {f"t.{i}": torch.zeros(2, 3, dtype=dt) for i, dt in enumerate(dtypes)}
    sd.update({"view.t": base.t(), "view.slice": base[1:, 2:], "tied": base, "scalar": torch.tensor(3.0),
               "big": torch.zeros(70000, dtype=torch.uint8)})
    for protocol in (2, 4, 5):
        path = tmp_path / f"sd{protocol}.pt"
        torch.save({"model": sd, "param": torch.nn.Parameter(torch.ones(3)), "frozen":
                    torch.nn.Parameter(torch.ones(2), requires_grad=False)}, path, pickle_protocol=protocol)
        loaded = torch.load(path, weights_only=False)  # our own file; weights_only refuses protocol 4 FRAMEs
        flat = {f"model.{k}": v for k, v in loaded["model"].items()} | {"param": loaded["param"],
                                                                          "frozen": loaded["frozen"]}
        snap = read(path)
        assert [t.name for t in snap.tensors] == list(flat)
        for t in snap.tensors:
            ref = flat[t.name]
            assert (t.shape, t.strides, t.offset) == (tuple(ref.shape), ref.stride(), ref.storage_offset()), t.name
            assert t.dtype == str(ref.dtype).removeprefix("torch."), t.name
            assert t.requires_grad == ref.requires_grad and t.is_parameter == isinstance(ref, torch.nn.Parameter)
            assert t.storage_nbytes == ref.untyped_storage().nbytes(), t.name
        assert len({t.storage for t in snap.tensors if t.name in ("model.view.t", "model.tied")}) == 1


def test_torchscript_typed_lists_are_plain_values(tmp_path: Path) -> None:
    """TorchScript pickles typed containers through torch.jit._pickle (build_intlist, build_tensorlist,
    restore_type_tag): they are lists, not unknown code, and tensors inside them are found."""
    from ckptdoctor.rules import security

    class WithLists(torch.nn.Module):  # attribute types are inferred by torch.jit.script from the values
        def __init__(self) -> None:
            super().__init__()
            self.sample_rates = [8000, 16000]
            self.names = {"a": 1}
            self.kernels = [torch.ones(2), torch.arange(3.0)]
            self.lin = torch.nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x) * self.sample_rates[0]

    path = tmp_path / "lists.pt"
    torch.jit.script(WithLists()).save(str(path))
    loaded = torch.jit.load(str(path))
    snap = read(path)
    helpers = {g.qualname for g in snap.globals if g.module == "torch.jit._pickle"}
    assert "torch.jit._pickle.build_intlist" in helpers
    assert security.check_pickle_globals(snap) == []
    assert snap.structure["sample_rates"] == list(loaded.sample_rates)
    kernels = [t for t in snap.tensors if t.name.startswith("kernels")]
    assert [k.read().tolist() for k in kernels] == [k.tolist() for k in loaded.kernels]


def test_text_header_counts_model_parameters_apart_from_optimizer_state(tmp_path: Path) -> None:
    """A training checkpoint's Adam moments are not parameters: the header shows what
    sum(p.numel() for p in model.parameters()) says, and the optimizer state beside it."""
    from cli_helpers import invoke

    model = torch.nn.Sequential(torch.nn.Embedding(50, 8), torch.nn.Linear(8, 3))
    opt = torch.optim.Adam(model.parameters())
    model(torch.tensor([[1, 2]])).sum().backward()
    opt.step()
    path = tmp_path / "train.pt"
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 1}, path)
    params = sum(p.numel() for p in model.parameters())
    state = sum(v.numel() for s in opt.state_dict()["state"].values() for v in s.values() if torch.is_tensor(v))
    res = invoke(["inspect", str(path)])
    assert res.exit_code == 0, res.output
    assert f"parameters: {params:,} (+ {state:,} optimizer state)" in " ".join(res.stdout.split())


def test_conj_and_neg_views_read_as_torch_load_gives_them(tmp_path: Path) -> None:
    """A conjugate (or negative) view is saved as the plain storage plus a lazy bit in the tensor metadata;
    torch.load applies it, and so do our values."""
    z = torch.randn(4, dtype=torch.complex64)
    path = tmp_path / "bits.pt"
    other = torch.randn(3, dtype=torch.complex64)  # torch cannot save a float view of z beside z itself
    torch.save({"conj": z.conj(), "neg": other.conj().imag, "plain": z}, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded["conj"].is_conj() and loaded["neg"].is_neg()
    snap = read(path)
    got = {t.name: t for t in snap.tensors}
    for name, tensor in loaded.items():
        assert np.array_equal(got[name].read(), tensor.resolve_conj().resolve_neg().numpy()), name
    assert got["conj"].attrs.get("conj") and got["neg"].attrs.get("neg") and "conj" not in got["plain"].attrs


@pytest.mark.parametrize(("layout", "parts"), [
    ("coo", ["indices", "values"]),
    ("csr", ["crow_indices", "col_indices", "values"]),
    ("csc", ["ccol_indices", "row_indices", "values"]),
])
def test_sparse_tensors_are_listed_by_their_parts(tmp_path: Path, layout: str, parts: list[str]) -> None:
    dense = torch.tensor([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0]])
    sparse = {"coo": dense.to_sparse, "csr": dense.to_sparse_csr, "csc": dense.to_sparse_csc}[layout]()
    path = tmp_path / "sparse.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Sparse CSR tensor support is in beta state"
        torch.save({"w": sparse}, path)
        loaded = torch.load(path, weights_only=True)["w"]
    expected = {"indices": loaded._indices, "values": loaded._values, "crow_indices": loaded.crow_indices,
                "col_indices": loaded.col_indices, "ccol_indices": loaded.ccol_indices,
                "row_indices": loaded.row_indices}
    if layout != "coo":
        expected["values"] = loaded.values
    snap = read(path)
    got = {t.name: t for t in snap.tensors}
    assert list(got) == [f"w.{p}" for p in parts]
    for part in parts:
        assert np.array_equal(got[f"w.{part}"].read(), expected[part]().numpy()), part
    assert snap.structure["w"]["layout"] == f"torch.sparse_{layout}"
    assert snap.structure["w"]["size"] == list(loaded.shape)


def test_shared_state_dict_under_two_keys_is_listed_under_both(tmp_path: Path) -> None:
    """{"model": sd, "ema": sd} pickles sd once; torch.load gives it under both keys, and so do we."""
    sd = torch.nn.Linear(3, 2).state_dict()
    path = tmp_path / "shared.pt"
    torch.save({"model": sd, "ema": sd}, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded["model"] is loaded["ema"]
    snap = read(path)
    assert sorted(t.name for t in snap.tensors) == sorted(flatten(loaded))
    assert not [d for d in snap.diagnostics if d.code == "F112"]


def test_a_small_pickle_naming_a_billion_paths_is_summarised(tmp_path: Path) -> None:
    """2 KB that nests {"k": d, "j": d} thirty times: torch.load shares the dicts; listing every path would
    take 2**30 names. The walk stops expanding repeats, says so (F112), and the CLI stays quick to answer."""
    d: dict[str, Any] = {"w": torch.zeros(2)}
    for _ in range(30):
        d = {"k": d, "j": d}
    path = tmp_path / "laughs.pt"
    torch.save(d, path)
    assert path.stat().st_size < 4096
    loaded = torch.load(path, weights_only=True)
    assert loaded["k"] is loaded["j"]
    snap = read(path)
    assert 0 < len(snap.tensors) < 20_000
    [f112] = [d for d in snap.diagnostics if d.code == "F112"]
    assert snap.metadata["repeats_not_expanded"] > 0 and "same object as" in f112.message
    assert all(t.name.endswith(".w") for t in snap.tensors)


def test_text_table_stops_at_a_thousand_rows(tmp_path: Path) -> None:
    from ckptdoctor.report.inspect_report import MAX_TABLE_ROWS
    from cli_helpers import invoke

    path = tmp_path / "many.pt"
    torch.save({f"t{i}": torch.zeros(1) for i in range(MAX_TABLE_ROWS + 250)}, path)
    res = invoke(["inspect", str(path), "-v"])
    assert res.exit_code == 0
    assert "… 250 more tensors" in res.stdout
    doc = json.loads(invoke(["inspect", str(path), "--format", "json"]).stdout)
    assert len(doc["tensors"]) == MAX_TABLE_ROWS + 250
