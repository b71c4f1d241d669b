"""numpy's load messages and Keras' archive guard, printed by the libraries themselves, then explained."""

from __future__ import annotations

import io
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ckptdoctor.catalog import explain
from zip_helpers import zip_declaring


def _explained(message: str) -> tuple[str, dict]:
    [finding] = explain(message).findings
    return finding.entry.code, finding.variables


def test_object_array_refusal(tmp_path: Path) -> None:
    path = tmp_path / "ragged.npy"
    np.save(path, np.array([[1, 2], [3]], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError) as err:
        np.load(path)
    assert _explained(f"ValueError: {err.value}")[0] == "W601"


def test_python2_header_warning(tmp_path: Path) -> None:
    text = "{'descr': '<f8', 'fortran_order': False, 'shape': (2L,), }"
    text += " " * (63 - (len(text) + 10) % 64) + "\n"
    path = tmp_path / "py2.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode() + bytes(16))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        np.load(path)
    [w] = [w for w in caught if "Python 2" in str(w.message)]
    assert _explained(f"UserWarning: {w.message}")[0] == "W602"


@pytest.mark.parametrize("where", ["npz", "npy"])
def test_truncated_array(tmp_path: Path, where: str) -> None:
    buf = io.BytesIO()
    np.save(buf, np.arange(100.0))
    data = buf.getvalue()[:300]
    if where == "npz":
        path = tmp_path / "cut.npz"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("a.npy", data)
        load = lambda: np.load(path)["a"]  # noqa: E731
    else:
        path = tmp_path / "cut.npy"
        path.write_bytes(data)
        load = lambda: np.load(path)  # noqa: E731
    with pytest.raises(ValueError) as err:
        load()
    code, variables = _explained(f"ValueError: {err.value}")
    assert code == "W603" and int(variables["got"]) < int(variables["expected"])


def test_keras_zip_bomb_refusal(tmp_path: Path) -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    good = tmp_path / "good.keras"
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(good)
    with zipfile.ZipFile(good) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    bomb = tmp_path / "bomb.keras"
    zip_declaring(bomb, members, "model.weights.h5", 5 << 30)
    with pytest.raises(ValueError) as err:
        keras.models.load_model(bomb)
    code, variables = _explained(f"ValueError: {err.value}")
    assert code == "W150" and variables["member"] == "model.weights.h5"
