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


def _npy_v1(header: str, payload: bytes) -> bytes:
    text = header + " " * (63 - len(header) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1") + payload


def test_python2_header_is_read_like_np_load(tmp_path: Path) -> None:
    """Python 2 wrote ``'shape': (2L, 3L)``; np.load reads it with a UserWarning, and so do we (F111)."""
    values = np.arange(6, dtype="<f8").reshape(2, 3)
    path = tmp_path / "py2.npy"
    path.write_bytes(_npy_v1("{'descr': '<f8', 'fortran_order': False, 'shape': (2L, 3L), }", values.tobytes()))
    with pytest.warns(UserWarning, match="created on Python 2"):
        expected = np.load(path)
    snap = read(path)
    [t] = snap.tensors
    assert (t.shape, t.dtype) == (expected.shape, "float64")
    assert np.array_equal(t.read(), expected)
    assert [d.code for d in snap.diagnostics] == ["F111"]
    assert "created on Python 2" in snap.diagnostics[0].framework_behavior


def test_l_suffix_in_a_version_3_header_is_refused_like_np_load(tmp_path: Path) -> None:
    """numpy applies the Python 2 clean-up only to format versions up to 2.0."""
    from ckptdoctor.errors import InputError

    text = "{'descr': '<f8', 'fortran_order': False, 'shape': (1L,), }"
    text += " " * (63 - (len(text) + 2) % 64) + "\n"
    path = tmp_path / "v3.npy"
    path.write_bytes(b"\x93NUMPY\x03\x00" + len(text).to_bytes(4, "little") + text.encode() + bytes(8))
    with pytest.raises(ValueError):
        np.load(path)
    with pytest.raises(InputError) as err:
        read(path)
    assert err.value.code == "F107"


def test_python2_object_arrays_are_reported(tmp_path: Path) -> None:
    """Python 2 era object arrays say ``|O8``; np.load refuses them like any object array."""
    payload = pickle.dumps(np.array([None, "x"], dtype=object), protocol=2)
    path = tmp_path / "py2obj.npy"
    path.write_bytes(_npy_v1("{'descr': '|O8', 'fortran_order': False, 'shape': (2,), }", payload))
    with pytest.raises(ValueError, match="allow_pickle=False"):
        np.load(path)
    snap = read(path)
    assert snap.tensors == []
    assert [a["name"] for a in snap.metadata["object_arrays"]] == ["array"]
    assert any(d.code == "S104" for d in security.check_object_arrays(snap))


@pytest.mark.parametrize("name", ["py2-objarr.npy", "py2-objarr.npz", "win64python2.npy", "python3.npy"])
def test_files_numpy_ships_for_its_own_tests(name: str) -> None:
    """Real files from the installed numpy package, written by other numpy and Python versions."""
    import warnings

    path = Path(np.__file__).parent / "lib" / "tests" / "data" / name
    if not path.exists():
        pytest.skip(f"this numpy build does not ship {name}")
    snap = read(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            loaded = np.load(path)
            arrays = dict(loaded) if hasattr(loaded, "files") else {"array": loaded}
        except ValueError as exc:  # object arrays
            assert "allow_pickle=False" in str(exc)
            assert snap.metadata["object_arrays"] and not snap.tensors
            return
    assert {t.name: t.shape for t in snap.tensors} == {k: v.shape for k, v in arrays.items()}
    for t in snap.tensors:
        assert np.array_equal(t.read(), arrays[t.name])


def test_arrays_that_are_not_tensors_are_listed(tmp_path: Path) -> None:
    """Strings, dates, records, raw bytes and long doubles: np.load reads them, torch.from_numpy refuses
    them, and inspect says they are there (D304) instead of leaving them out silently."""
    import torch

    from ckptdoctor.inspection import inspect

    side = {"vocab": np.array(["hello", "world"]), "when": np.array(["2020-01-01"], dtype="M8[D]"),
            "rec": np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")]), "raw": np.zeros(2, dtype="V4"),
            "f128": np.zeros(2, dtype=np.longdouble)}
    path = tmp_path / "mixed.npz"
    np.savez(path, w=np.ones((2, 2), np.float32), **side)
    loaded = np.load(path)
    for name in side:
        assert loaded[name].shape == side[name].shape
        with pytest.raises(TypeError, match=r"can't convert np\.ndarray"):
            torch.from_numpy(loaded[name])
    [snap] = inspect(path)
    assert [t.name for t in snap.tensors] == ["w"]
    [d] = [d for d in snap.diagnostics if d.code == "D304"]
    assert {a["name"] for a in d.details["arrays"]} == set(side)
    assert all(name in d.message for name in side)


def test_large_protocol0_pickle_is_recognised(tmp_path: Path) -> None:
    """Python 2 era ``.pkl`` files are protocol 0 text: ``(dp0\\nVword0\\n...``. A large one has no STOP in
    its first 4 KiB; it is still a pickle (what pickle.loads returns, we show)."""
    words = {f"word{i}": i for i in range(3000)}
    obj = {"word_to_ix": words, "emb": np.arange(12, dtype=np.float64).reshape(3, 4)}
    data = pickle.dumps(obj, protocol=0)
    assert data.startswith(b"(dp0\n") and b"." not in data[4096 - 64:4096]
    path = tmp_path / "vectors.pkl"
    path.write_bytes(data)
    expected = pickle.loads(data)  # our own fixture
    snap = read(path)
    assert snap.format == "pickle"
    [t] = snap.tensors
    assert t.name == "emb" and np.array_equal(t.read(), expected["emb"])
    assert list(snap.structure["word_to_ix"])[:5] == list(expected["word_to_ix"])[:5]


@pytest.mark.parametrize("text", [
    "computer human interface\ncomputer response survey system time user\n",  # starts with GLOBAL's 'c'
    "(1) Introduction\n\nThis corpus holds short documents, one per line\n",  # starts with MARK '('
])
def test_text_that_starts_like_protocol0_is_not_a_pickle(tmp_path: Path, text: str) -> None:
    from ckptdoctor.errors import InputError

    path = tmp_path / "corpus.txt"
    path.write_text(text * 200)
    with pytest.raises((pickle.UnpicklingError, ImportError)):  # GLOBAL tries to import "omputer human ..."
        pickle.loads(path.read_bytes())
    with pytest.raises(InputError) as err:
        read(path)
    assert err.value.code == "F104"
