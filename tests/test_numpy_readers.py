"""NumPy .npy/.npz readers against np.load, and plain pickles (including the real chatbot vocabularies)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from ckptdoctor.readers import read
from ckptdoctor.rules import security

REAL = Path("/work/shared/real/python-chatbot")


@pytest.fixture(scope="module")
def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "f32": rng.standard_normal((3, 4)).astype(np.float32),
        "big_endian": np.arange(12, dtype=">i4").reshape(3, 4),
        "fortran": np.asfortranarray(rng.standard_normal((2, 5))),
        "u8": np.arange(7, dtype=np.uint8),
        "bool": np.array([True, False]),
        "c128": np.array([1 + 2j, 3 - 4j]),
        "empty": np.zeros((0, 2), dtype=np.float16),
    }


def compare(path: Path, expected: dict[str, np.ndarray]) -> None:
    snap = read(path)
    got = {t.name: t for t in snap.tensors}
    assert set(got) == set(expected)
    for name, arr in expected.items():
        assert got[name].shape == arr.shape
        assert got[name].dtype == arr.dtype.newbyteorder("=").name
        assert np.array_equal(got[name].read(), arr)


def test_npy(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    for name, arr in arrays.items():
        p = tmp_path / f"{name}.npy"
        np.save(p, arr)
        snap = read(p)
        assert snap.format == "npy"
        loaded = np.load(p)
        assert snap.tensors[0].shape == loaded.shape
        assert np.array_equal(snap.tensors[0].read(), loaded)


@pytest.mark.parametrize("compressed", [False, True])
def test_npz(tmp_path: Path, arrays: dict[str, np.ndarray], compressed: bool) -> None:
    p = tmp_path / "a.npz"
    (np.savez_compressed if compressed else np.savez)(p, **arrays)
    with np.load(p) as z:
        expected = {k: z[k] for k in z.files}
    compare(p, expected)


def test_object_array_is_reported_not_loaded(tmp_path: Path) -> None:
    p = tmp_path / "obj.npz"
    np.savez(p, ok=np.ones(2), obj=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"), np.load(p) as z:
        z["obj"]
    snap = read(p)
    assert [t.name for t in snap.tensors] == ["ok"]
    assert snap.metadata["object_arrays"][0]["name"] == "obj"
    diags = security.check_object_arrays(snap)
    assert len(diags) == 1 and diags[0].code == "S104"


def test_object_array_with_payload(tmp_path: Path) -> None:
    import os

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    p = tmp_path / "evil.npy"
    np.save(p, np.array([Evil()], dtype=object), allow_pickle=True)
    snap = read(p)
    assert any(g.qualname in ("posix.system", "os.system") for g in snap.globals)
    assert [d.code for d in security.check_pickle_globals(snap)].count("S101") == 1


def test_truncated_npy(tmp_path: Path) -> None:
    from ckptdoctor.errors import InputError

    p = tmp_path / "cut.npy"
    np.save(p, np.ones((100, 100)))
    data = p.read_bytes()
    p.write_bytes(data[:5000])
    with pytest.raises(InputError) as info:
        read(p)
    assert info.value.code == "F103"


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_pickle_with_numpy(tmp_path: Path, protocol: int) -> None:
    obj = {"emb": np.arange(6, dtype=np.float32).reshape(2, 3), "f": np.asfortranarray(np.eye(3)),
           "big": np.linspace(0, 1, 20_000), "epoch": 4, "best": np.float64(0.25), "words": ["a", "b"]}
    p = tmp_path / "ckpt.pkl"
    p.write_bytes(pickle.dumps(obj, protocol=protocol))
    snap = read(p)
    assert snap.format == "pickle"
    got = {t.name: t for t in snap.tensors}
    assert set(got) == {"emb", "f", "big"}
    for name in got:
        assert got[name].shape == obj[name].shape
        assert np.array_equal(got[name].read(), obj[name])
    assert snap.structure["epoch"] == 4 and snap.structure["best"] == 0.25 and snap.structure["words"] == ["a", "b"]


@pytest.mark.skipif(not REAL.exists(), reason="real chatbot files not present")
@pytest.mark.parametrize("name", ["words.pkl", "classes.pkl"])
def test_real_chatbot_pickles(name: str) -> None:
    path = REAL / name
    with open(path, "rb") as fh:
        expected = pickle.load(fh)  # a list of str: the test may load its own trusted fixture
    snap = read(path)
    assert snap.format == "pickle" and snap.framework == "python"
    assert snap.tensors == [] and snap.globals == []
    from ckptdoctor.readers.pickle_objects import MAX_LIST_SHOWN as N

    assert snap.structure == expected[:N] + ([f"… {len(expected) - N:,} more items"] if len(expected) > N else [])
    assert snap.metadata["object"] == f"list of {len(expected)} str"
    assert security.check_pickle_globals(snap) == []
