"""Keras readers against Keras 3 (torch backend) and h5py: the article's chatbot saved as .keras, .h5 and
.weights.h5, a mixed_float16 model and a bfloat16-variable model."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")

import h5py
import ml_dtypes
import numpy as np
import pytest

from ckptdoctor.errors import InputError
from ckptdoctor.readers import read
from zip_helpers import zip_declaring

keras = pytest.importorskip("keras")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    return subprocess.run([sys.executable, "-m", "ckptdoctor", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def chatbot(dtype: str | None = None) -> Any:
    layers = keras.layers
    return keras.Sequential([
        keras.Input((20,), dtype="int32"),
        layers.Embedding(1000, 64, dtype=dtype),
        layers.LSTM(128, dtype=dtype),
        layers.Dense(2, activation="softmax", dtype=dtype),
    ])


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("keras")
    keras.backend.clear_session()  # auto-names (dense, lstm, input_layer) must not depend on earlier tests
    keras.utils.set_random_seed(0)
    model = chatbot()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).integers(0, 1000, (8, 20))
    model.fit(x, np.arange(8) % 2, verbose=0, epochs=1)
    paths = {"keras": d / "chatbot.keras", "h5": d / "chatbot.h5", "weights": d / "chatbot.weights.h5"}
    model.save(paths["keras"])
    model.save(paths["h5"])
    model.save_weights(paths["weights"])
    return {"model": model, **paths}


def h5_datasets(f: h5py.File) -> dict[str, tuple[tuple[int, ...], Any]]:
    out: dict[str, tuple[tuple[int, ...], Any]] = {}
    f.visititems(lambda name, obj: out.__setitem__(name, (obj.shape, obj.dtype))
                 if isinstance(obj, h5py.Dataset) else None)
    return out


def keras_weights_by_path(model: Any) -> dict[str, tuple[tuple[int, ...], str, np.ndarray]]:
    return {v.path: (tuple(v.shape), str(v.dtype), keras.ops.convert_to_numpy(v.value)) for v in model.weights}


def check_keras3_tensors(snap: Any, f: h5py.File, model: Any, ordered: bool = True) -> None:
    """Every dataset is a tensor with h5py's shape; model tensors map onto the model's variables (in the
    model's order when the file has a config; a bare .weights.h5 only has HDF5's alphabetical order)."""
    datasets = h5_datasets(f)
    assert {t.name: t.shape for t in snap.tensors} == {k: v[0] for k, v in datasets.items()}
    model_tensors = [t for t in snap.tensors if t.attrs.get("role") != "optimizer"]
    by_path = keras_weights_by_path(model)
    names = [t.attrs["keras_path"] for t in model_tensors]
    assert (names if ordered else sorted(names)) == (list(by_path) if ordered else sorted(by_path))
    for t in model_tensors:
        shape, dtype, value = by_path[t.attrs["keras_path"]]
        assert t.shape == shape and t.dtype == dtype
        assert np.array_equal(np.asarray(t.read(), dtype=np.float64), np.asarray(value, dtype=np.float64))
    opt = [t for t in snap.tensors if t.attrs.get("role") == "optimizer"]
    assert [t.shape for t in opt] == [tuple(v.shape) for v in model.optimizer.variables]


def test_weights_h5(saved: dict[str, Any]) -> None:
    snap = read(saved["weights"])
    assert snap.format == "keras-weights" and snap.framework == "keras"
    with h5py.File(saved["weights"], "r") as f:
        check_keras3_tensors(snap, f, saved["model"], ordered=False)
    # without a config, the classes come from the layer keys
    assert [(x["name"], x["class_name"]) for x in snap.layers] == [
        ("dense", "Dense"), ("embedding", "Embedding"), ("lstm", "LSTM")]


def test_keras_v3(saved: dict[str, Any]) -> None:
    snap = read(saved["keras"])
    model = saved["model"]
    assert snap.format == "keras-v3"
    with zipfile.ZipFile(saved["keras"]) as zf:
        meta = json.loads(zf.read("metadata.json"))
        config = json.loads(zf.read("config.json"))
        weights = io.BytesIO(zf.read("model.weights.h5"))
    assert snap.framework_version == meta["keras_version"] == keras.__version__
    assert snap.metadata["date_saved"] == meta["date_saved"]
    assert snap.config == config
    assert snap.training_config == config["compile_config"]
    with h5py.File(weights, "r") as f:
        check_keras3_tensors(snap, f, model)
    # layers in model order, with hyperparameters and their weights
    assert [x["name"] for x in snap.layers] == ["input_layer"] + [layer.name for layer in model.layers]
    by_name = {x["name"]: x for x in snap.layers}
    lstm = by_name[model.layers[1].name]
    assert lstm["class_name"] == "LSTM" and lstm["hyperparameters"]["units"] == 128
    assert [w["shape"] for w in lstm["weights"]] == [list(w.shape) for w in model.layers[1].weights]
    assert by_name[model.layers[0].name]["hyperparameters"]["input_dim"] == 1000
    assert by_name[model.layers[2].name]["hyperparameters"]["activation"] == "softmax"


def test_keras_v3_classes(saved: dict[str, Any]) -> None:
    snap = read(saved["keras"])
    config = snap.config

    def class_nodes(node: Any) -> list[tuple[str, Any]]:
        found = []
        if isinstance(node, dict):
            if isinstance(node.get("class_name"), str) and node["class_name"] != "__keras_tensor__":
                found.append((node["class_name"], node.get("module")))
            for v in node.values():
                found.extend(class_nodes(v))
        elif isinstance(node, list):
            for v in node:
                found.extend(class_nodes(v))
        return found

    assert sorted((c.name, c.module) for c in snap.classes) == sorted(class_nodes(config))
    assert all(c.builtin for c in snap.classes)
    roles = {(c.name, c.role) for c in snap.classes}
    assert {("Sequential", "keras-model"), ("LSTM", "keras-layer"), ("Adam", "keras-object"),
            ("GlorotUniform", "keras-object"), ("DTypePolicy", "keras-object")} <= roles


def test_legacy_h5_from_keras3(saved: dict[str, Any]) -> None:
    snap = read(saved["h5"])
    model = saved["model"]
    assert snap.format == "keras-h5"
    with h5py.File(saved["h5"], "r") as f:
        assert snap.framework_version == f.attrs["keras_version"]
        assert snap.metadata["backend"] == f.attrs["backend"] == "torch"
        assert snap.config == json.loads(f.attrs["model_config"])
        assert snap.training_config == json.loads(f.attrs["training_config"])
        layer_names = [n if isinstance(n, str) else n.decode() for n in f["model_weights"].attrs["layer_names"]]
        weight_names = [n if isinstance(n, str) else n.decode()
                        for ln in layer_names for n in f["model_weights"][ln].attrs["weight_names"]]
        n_datasets = len(h5_datasets(f))
    assert [x["name"] for x in snap.layers] == layer_names
    model_tensors = [t for t in snap.tensors if t.attrs.get("role") != "optimizer"]
    assert [t.name for t in model_tensors] == weight_names == [v.path for v in model.weights]
    assert len(snap.tensors) == n_datasets
    for t, v in zip(model_tensors, model.weights, strict=True):
        assert t.shape == tuple(v.shape)
        assert np.array_equal(t.read(), keras.ops.convert_to_numpy(v.value))


def test_cli_json_matches_h5py(saved: dict[str, Any]) -> None:
    for key in ("keras", "h5", "weights"):
        proc = cli("inspect", str(saved[key]), "--format", "json", "--values")
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        if key == "keras":
            with zipfile.ZipFile(saved[key]) as zf:
                f = h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r")
        else:
            f = h5py.File(saved[key], "r")
        with f:
            datasets = h5_datasets(f)
            paths = {t.get("attrs", {}).get("h5_path", t["name"]) for t in out["tensors"]}
            assert paths == set(datasets)
            for t in out["tensors"]:
                shape, dtype = datasets[t.get("attrs", {}).get("h5_path", t["name"])]
                assert t["shape"] == list(shape) and t["dtype"] == str(dtype)
                values = f[t.get("attrs", {}).get("h5_path", t["name"])][()].astype(np.float64)
                assert t["values"]["min"] == pytest.approx(values.min())
                assert t["values"]["max"] == pytest.approx(values.max())
                assert t["values"]["mean"] == pytest.approx(values.mean())
        codes = {d["code"] for d in out["diagnostics"]}
        assert ("F201" in codes) == (key == "h5")


def test_mixed_float16_model(tmp_path: Path) -> None:
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = chatbot()
        model.build((None, 20))
        model.save(tmp_path / "mp.keras")
        model.save(tmp_path / "mp.h5")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    for name in ("mp.keras", "mp.h5"):
        snap = read(tmp_path / name)
        # variables are float32 under mixed_float16; the policy lives in the config
        assert {t.dtype for t in snap.tensors} == {str(v.dtype) for v in model.weights} == {"float32"}
        policies = {x["name"]: x["hyperparameters"].get("dtype") for x in snap.layers if x.get("class_name")}
        assert policies[model.layers[1].name] == model.layers[1].dtype_policy.name == "mixed_float16"


def test_file_advice_codes(tmp_path: Path, saved: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    """F201 for the legacy format only; F202 only for an uncompiled legacy full model, whose load Keras
    itself reports with 'No training configuration found'."""
    from ckptdoctor.inspection import inspect

    model = chatbot()
    model.build((None, 20))
    model.save(tmp_path / "uncompiled.h5")

    def codes(path: Path) -> set[str]:
        return {d.code for s in inspect(path) for d in s.diagnostics if d.code.startswith("F2")}

    assert codes(tmp_path / "uncompiled.h5") == {"F201", "F202"}
    assert codes(saved["h5"]) == {"F201"}
    assert codes(saved["keras"]) == codes(saved["weights"]) == set()
    with caplog.at_level(logging.WARNING):
        keras.models.load_model(tmp_path / "uncompiled.h5")
    assert any("No training configuration found" in r.getMessage() for r in caplog.records)


def test_bfloat16_variables(tmp_path: Path) -> None:
    # the LSTM stays float32: its Orthogonal initializer cannot run in bfloat16 on torch's CPU backend
    model = keras.Sequential([keras.Input((20,), dtype="int32"), keras.layers.Embedding(1000, 64, dtype="bfloat16"),
                              keras.layers.LSTM(16), keras.layers.Dense(2, dtype="bfloat16")])
    model.save_weights(tmp_path / "bf.weights.h5")
    model.save(tmp_path / "bf.h5")
    snap = read(tmp_path / "bf.weights.h5")
    with h5py.File(tmp_path / "bf.weights.h5", "r") as f:
        assert f["layers/embedding/vars/0"].dtype.kind == "V"  # stored opaque, named by an attr
    by_path = keras_weights_by_path(model)
    for t in snap.tensors:
        shape, dtype, value = by_path[t.attrs["keras_path"]]
        assert (t.shape, t.dtype) == (shape, dtype)
        arr = t.read()
        assert arr.dtype == (np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.float32)
        assert np.array_equal(arr.astype(np.float32), np.asarray(value, dtype=np.float32))
    assert sorted({t.dtype for t in snap.tensors}) == ["bfloat16", "float32"]
    legacy = read(tmp_path / "bf.h5")  # legacy .h5 has no dtype attr: 2-byte opaque is bfloat16
    assert [t.dtype for t in legacy.tensors] == [str(v.dtype) for v in model.weights]


def test_hdf5_that_is_not_keras(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "data.h5", "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(InputError) as info:
        read(tmp_path / "data.h5")
    assert info.value.code == "F108"


def test_keras_zip_without_weights(tmp_path: Path, saved: dict[str, Any]) -> None:
    bad = tmp_path / "noweights.keras"
    with zipfile.ZipFile(saved["keras"]) as src, zipfile.ZipFile(bad, "w") as dst:
        for name in ("metadata.json", "config.json"):
            dst.writestr(name, src.read(name))
    with pytest.raises(InputError) as info:
        read(bad)
    assert info.value.code == "F107" and "model.weights.h5" in info.value.message


def test_deflated_keras_archive_is_read(tmp_path: Path, saved: dict[str, Any]) -> None:
    """A .keras re-zipped with compression cannot be windowed; it is read through the zip stream."""
    again = tmp_path / "deflated.keras"
    with zipfile.ZipFile(saved["keras"]) as src, zipfile.ZipFile(again, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
    a, b = read(saved["keras"]), read(again)
    assert [(t.name, t.shape) for t in a.tensors] == [(t.name, t.shape) for t in b.tensors]
    assert np.array_equal(a.tensors[0].read(), b.tensors[0].read())


def test_legacy_weights_only_with_chunked_attrs(tmp_path: Path) -> None:
    """Keras 2 `save_weights("x.h5")`: layer names at the root, split into layer_names0/1 when long
    (as Keras's save_attributes_to_hdf5_group does), bytes attrs, `:0` suffixes."""
    path = tmp_path / "k2_weights.h5"
    rng = np.random.default_rng(0)
    layers = {f"dense_{i}": [(f"dense_{i}/kernel:0", rng.standard_normal((3, 3))),
                             (f"dense_{i}/bias:0", rng.standard_normal(3))] for i in range(1, 4)}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.1.6"
        f.attrs["backend"] = b"tensorflow"
        names = [n.encode() for n in layers]
        f.attrs["layer_names0"] = np.array(names[:2])
        f.attrs["layer_names1"] = np.array(names[2:])
        for lname, weights in layers.items():
            g = f.create_group(lname)
            g.attrs["weight_names"] = np.array([w.encode() for w, _ in weights])
            for wname, value in weights:
                g[wname] = value.astype(np.float32)
    snap = read(path)
    assert snap.format == "keras-h5" and snap.framework_version == "2.1.6"
    assert snap.config is None and snap.metadata["layout"] == "legacy weights only"
    assert [x["name"] for x in snap.layers] == list(layers)
    expected = [(w, v) for weights in layers.values() for w, v in weights]
    assert [t.name for t in snap.tensors] == [w for w, _ in expected]
    for t, (_, value) in zip(snap.tensors, expected, strict=True):
        assert np.array_equal(t.read(), value.astype(np.float32))
    assert {x.attrs["variable"] for x in snap.tensors} == {"kernel", "bias"}


def test_truncated_hdf5(tmp_path: Path, saved: dict[str, Any]) -> None:
    data = Path(saved["h5"]).read_bytes()
    bad = tmp_path / "cut.h5"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError) as info:
        read(bad)
    assert info.value.code == "F103"


def test_damaged_entry_name_is_reported_as_keras_loading_misses_it(tmp_path: Path, saved: dict[str, Any]) -> None:
    """One damaged byte in a group name makes h5py return that name as bytes: the reader reports the entry
    (F107) instead of failing, and Keras indeed cannot find the variables under it."""
    data = saved["weights"].read_bytes()
    with h5py.File(saved["weights"], "r") as f:
        assert isinstance(f["layers/embedding/vars"], h5py.Group)
    # the embedding's "vars" link name sits in the local heap of /layers/embedding; damage each candidate
    # until h5py shows the damaged name there
    for at in (i for i in range(len(data) - 5) if data[i:i + 5] == b"vars\0"):
        path = tmp_path / "damaged.weights.h5"
        path.write_bytes(data[:at + 2] + b"\xaf" + data[at + 3:])
        with h5py.File(path, "r") as f:
            if b"va\xafs" in list(f["layers/embedding"]):
                break
    else:
        pytest.fail("no 'vars' name of layers/embedding found in the file")
    snap = read(path)
    damaged = [d for d in snap.diagnostics if d.code == "F107"]
    assert [d.subject for d in damaged] == ["layers/embedding/va\ufffds"]
    assert damaged[0].severity.name == "ERROR"
    assert not any(t.name.startswith("layers/embedding") for t in snap.tensors)
    model = chatbot()
    with pytest.raises(ValueError, match="expected 1 variables, but received 0"):
        model.load_weights(path)


def test_damaged_class_name_in_config_predicts_load_model_failure(tmp_path: Path) -> None:
    src = tmp_path / "model.h5"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(src)
    data = src.read_bytes()
    at = data.index(b"GlorotUniform")
    path = tmp_path / "damaged.h5"
    path.write_bytes(data[:at + 1] + b"\xc9" + data[at + 2:])  # one byte of the model_config attribute
    from ckptdoctor.inspection import inspect

    (snap,) = inspect(path)
    damaged = [d for d in snap.diagnostics if d.code == "F107"]
    assert len(damaged) == 1 and "G\\udcc9orotUniform" in damaged[0].message  # the damaged byte, 0xc9
    assert damaged[0].severity.name == "ERROR"
    with pytest.raises(TypeError, match="Error when deserializing class"):
        keras.models.load_model(path)
    (clean,) = inspect(src)
    assert not [d for d in clean.diagnostics if d.code == "F107"]


@pytest.mark.parametrize("shape", ["cycle", "shared-thirty-times"])
def test_hard_links_in_weights_h5_are_read_once(tmp_path: Path, shape: str) -> None:
    """A group linked back to its parent (a cycle) or linked twice at each of thirty levels (2**30 paths):
    Keras opens only the paths it expects and loads the weights; we read each group once and say so."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    path = tmp_path / "linked.weights.h5"
    model.save_weights(path)
    with h5py.File(path, "a") as f:
        if shape == "cycle":
            f["layers/dense/loop"] = f["layers"]
        else:
            prev = f["layers/dense/vars"]
            for i in range(30):
                level = f.create_group(f"l{i}")
                level["a"] = prev
                level["b"] = prev
                prev = level
    fresh = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    fresh.load_weights(path)  # Keras itself is not bothered
    snap = read(path)
    expected = {v.path: keras.ops.convert_to_numpy(v) for v in fresh.weights}
    assert sorted(t.shape for t in snap.tensors) == sorted(v.shape for v in expected.values())
    assert {t.name for t in snap.tensors} == {"layers/dense/vars/0", "layers/dense/vars/1"}
    [d] = [d for d in snap.diagnostics if d.code == "F107"]
    assert str(d.severity) == "warning" and "read once" in d.message


def test_keras_decompression_bomb_is_refused_like_keras(tmp_path: Path) -> None:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    good = tmp_path / "good.keras"
    model.save(good)
    with zipfile.ZipFile(good) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    bomb = tmp_path / "bomb.keras"
    zip_declaring(bomb, members, "model.weights.h5", 5 << 30)
    with pytest.raises(ValueError, match="decompression bomb") as err:
        keras.models.load_model(bomb)
    snap = read(bomb)  # nothing decompressed, the layers still listed from config.json
    [d] = [d for d in snap.diagnostics if d.code == "F113"]
    assert d.found == 5 << 30 and "refusing to load a potential decompression bomb" in d.framework_behavior
    assert "refusing to load a potential decompression bomb" in str(err.value)
    assert snap.tensors == [] and snap.config is not None
    # just under Keras' 4 GiB floor: Keras reads it (and so would we); the guard does not fire
    near = tmp_path / "near.keras"
    zip_declaring(near, members, "model.weights.h5", (4 << 30) - 1)
    with zipfile.ZipFile(near) as zf:
        from ckptdoctor.readers.keras_v3 import zip_bomb

        assert zip_bomb(zf.getinfo("model.weights.h5")) is None
