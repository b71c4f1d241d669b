"""Bad input never becomes a traceback: every single-byte corruption of a real checkpoint either still
reads or raises InputError (one line, exit 2), for the pickle stream, the zip directory and headers."""

from __future__ import annotations

import os
import random
import zipfile
from pathlib import Path

import pytest
import torch

from ckptdoctor.errors import InputError
from ckptdoctor.inspection import inspect
from cli_helpers import invoke


def _state_dict() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2)
    return {"emb.weight": torch.randn(4, 3), "fc.weight": lin.weight, "tied": lin.weight,
            "view": torch.arange(10.0)[2:5], "half": torch.ones(2, dtype=torch.float16),
            "steps": torch.tensor(7)}


def _mutants(data: bytes, start: int, end: int, count: int, seed: int) -> list[bytes]:
    # CKPTDOCTOR_MUTATION_SEED explores other corruptions locally; CI runs the fixed default
    rng = random.Random(seed + int(os.environ.get("CKPTDOCTOR_MUTATION_SEED", "0")))
    out = []
    for _ in range(count):
        i = rng.randrange(start, end)
        out.append(data[:i] + bytes([rng.randrange(256)]) + data[i + 1:])
    return out


def _read_all(path: Path) -> str:
    """What `ckptdoctor inspect --values` does with the file (the CLI itself, in process): 'ok' (exit 0 or
    1, findings included) or 'refused' (exit 2, one line). A traceback propagates and fails the test."""
    res = invoke(["inspect", str(path), "--values", "--format", "json"], catch_exceptions=False)
    assert res.exit_code in (0, 1, 2), res.output
    return "refused" if res.exit_code == 2 else "ok"


def _outcomes(tmp_path: Path, data: bytes, start: int, end: int, seed: int, suffix: str) -> list[str]:
    """Write 300 single-byte mutants of data[start:end] and read each as the CLI would. Callers assert
    that some were refused: the corruptions really reach the parser."""
    outcomes = []
    for n, mutant in enumerate(_mutants(data, start, end, 300, seed=seed)):
        path = tmp_path / f"m{n}{suffix}"
        path.write_bytes(mutant)
        outcomes.append(_read_all(path))
    return outcomes


@pytest.mark.parametrize("region", ["data.pkl", "zip-directory"])
def test_torch_zip_mutations(tmp_path: Path, region: str) -> None:
    src = tmp_path / "sd.pt"
    torch.save(_state_dict(), src)
    data = src.read_bytes()
    with zipfile.ZipFile(src) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith("data.pkl"))
        pkl_start = info.header_offset + 30 + len(info.filename) + len(info.extra)
        pkl_end = pkl_start + info.compress_size
        cd_start = max(i.header_offset for i in zf.infolist())
    start, end = (pkl_start, pkl_end) if region == "data.pkl" else (cd_start, len(data))
    assert "refused" in _outcomes(tmp_path, data, start, end, seed=len(region), suffix=".pt")


def test_torch_storage_mutations_with_values_and_convert(tmp_path: Path) -> None:
    """Bytes changed in the storages and data.pkl of a checkpoint with a conjugate view, a sparse tensor
    and a view: `inspect --values` (CRC checks, windows) and `convert` end in exit 0/1/2, never a traceback,
    and the damaged storages are caught (found by a campaign: a bad local header crashed the CRC check)."""
    z = torch.randn(5, dtype=torch.complex64)
    src = tmp_path / "rich.pt"
    torch.save({"model": _state_dict(), "conj": z.conj(), "sparse": torch.eye(3).to_sparse(),
                "part": torch.arange(20.0)[5:15]}, src)
    data = src.read_bytes()
    caught = 0
    for n, mutant in enumerate(_mutants(data, 0, len(data), 150, seed=11)):
        path = tmp_path / f"r{n}.pt"
        path.write_bytes(mutant)
        res = invoke(["inspect", str(path), "--values", "--format", "json"], catch_exceptions=False)
        assert res.exit_code in (0, 1, 2), res.output
        caught += res.exit_code != 0
        out = tmp_path / f"r{n}.safetensors"
        conv = invoke(["convert", str(path), "-o", str(out), "--key", "model"], catch_exceptions=False)
        assert conv.exit_code in (0, 2), conv.output
        assert conv.exit_code == 0 or not out.exists()
    assert caught > 30


def test_legacy_torch_mutations(tmp_path: Path) -> None:
    src = tmp_path / "legacy.pt"
    torch.save(_state_dict(), src, _use_new_zipfile_serialization=False)
    data = src.read_bytes()
    assert "refused" in _outcomes(tmp_path, data, 0, min(len(data), 1200), seed=2, suffix=".pt")


def test_safetensors_header_mutations(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    src = tmp_path / "x.safetensors"
    save_file({k: v.clone().contiguous() for k, v in _state_dict().items()}, str(src))
    data = src.read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little")
    assert "refused" in _outcomes(tmp_path, data, 0, header_end, seed=3, suffix=".safetensors")


def test_gguf_header_mutations(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    import numpy as np

    src = tmp_path / "x.gguf"
    writer = gguf.GGUFWriter(str(src), "llama")
    writer.add_uint32("llama.context_length", 128)
    writer.add_array("tokenizer.ggml.tokens", ["a", "b", "c"])
    writer.add_tensor("token_embd.weight", np.arange(12, dtype=np.float32).reshape(3, 4))
    writer.add_tensor("output.weight", np.ones((4, 3), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    data = src.read_bytes()
    assert "refused" in _outcomes(tmp_path, data, 0, min(len(data), 512), seed=4, suffix=".gguf")


@pytest.mark.parametrize("suffix", [".weights.h5", ".h5", ".keras"])
def test_keras_hdf5_mutations(tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """libhdf5 segfaults or loops forever on some of these mutants (hdf5_guard rehearses the read in a
    child first): each must still end as 'ok' or one F107 line, and this test process must survive."""
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    monkeypatch.setenv("CKPTDOCTOR_HDF5_TIMEOUT", "3")
    import keras

    model = keras.Sequential([keras.Input((5,)), keras.layers.Embedding(20, 4), keras.layers.LSTM(3),
                              keras.layers.Dense(2)])
    src = tmp_path / f"src{suffix}"
    if suffix == ".weights.h5":
        model.save_weights(src)
    else:
        model.save(src)
    data = src.read_bytes()
    # the metadata (superblock, object headers, heaps, B-trees) sits in the first few KiB of an HDF5 file
    end = len(data) if suffix == ".keras" else min(len(data), 6144)
    outcomes = _outcomes(tmp_path, data, 0, end, seed=5 + len(suffix), suffix=suffix)
    assert "refused" in outcomes and "ok" in outcomes


def _folder_outcomes(tmp_path: Path, src: Path, member: str, count: int, seed: int) -> list[str]:
    """Like _outcomes, for one member of a checkpoint folder: each mutant is a copy of the folder."""
    import shutil

    data = (src / member).read_bytes()
    outcomes = []
    for n, mutant in enumerate(_mutants(data, 0, len(data), count, seed=seed)):
        work = tmp_path / f"m{n}"
        shutil.copytree(src, work)
        (work / member).write_bytes(mutant)
        outcomes.append(_read_all(work))
        shutil.rmtree(work)
    return outcomes


@pytest.mark.parametrize(("folder", "member"), [("chatbot_savedmodel", "saved_model.pb"),
                                                 ("chatbot_savedmodel", "variables/variables.index"),
                                                 ("bidi_savedmodel", "keras_metadata.pb")])
def test_tensorflow_folder_mutations(tmp_path: Path, folder: str, member: str) -> None:
    """TensorFlow SavedModel / checkpoint files (made by TF 2.21, tests/data/tf), parsed by hand-written
    protobuf and table readers: one damaged byte in a member is read or refused, never a traceback."""
    src = Path(__file__).parent / "data" / "tf" / folder
    assert "ok" in _folder_outcomes(tmp_path, src, member, 150, seed=len(member))


def test_distributed_checkpoint_metadata_mutations(tmp_path: Path) -> None:
    """The .metadata pickle of a torch.distributed.checkpoint folder: a damaged byte can leave a valid
    pickle of the wrong shape (found: TypeError from an Opaque where a list was expected)."""
    import warnings

    import torch.distributed.checkpoint as dcp

    src = tmp_path / "ckpt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "torch.distributed is ... uninitialized": single process
        dcp.save({k: v.clone() for k, v in _state_dict().items()}, checkpoint_id=str(src))
    outcomes = _folder_outcomes(tmp_path, src, ".metadata", 300, seed=6)
    assert "ok" in outcomes and "refused" in outcomes


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_mutations(tmp_path: Path, compressed: bool) -> None:
    """np.savez / savez_compressed archives (zipfile with stored or deflated members): found a damaged
    compression method (NotImplementedError) and a damaged deflate stream (zlib.error)."""
    import numpy as np

    src = tmp_path / "src.npz"
    arrays = {"w": np.random.default_rng(0).standard_normal((30, 40)), "b": np.arange(100)}
    (np.savez_compressed if compressed else np.savez)(src, **arrays)
    outcomes = _outcomes(tmp_path, src.read_bytes(), 0, src.stat().st_size, seed=7 + compressed, suffix=".npz")
    assert "ok" in outcomes and "refused" in outcomes


def test_damaged_saved_model_proto_is_refused_not_a_buffer_error(tmp_path: Path) -> None:
    """Found by the test above: a parse error while slices of the mapped saved_model.pb were alive made
    closing the map raise BufferError over the parse error."""
    import shutil

    work = tmp_path / "sm"
    shutil.copytree(Path(__file__).parent / "data" / "tf" / "chatbot_savedmodel", work)
    data = (work / "saved_model.pb").read_bytes()
    (work / "saved_model.pb").write_bytes(data[:5309] + bytes([59]) + data[5310:])
    with pytest.raises(InputError) as info:
        inspect(work)
    assert info.value.code == "F107" and "not a valid SavedModel proto" in info.value.message
