"""TensorFlow checkpoints and SavedModel folders, read without TensorFlow.

TensorFlow is not installed here: the fixtures in ``tests/data/tf`` were made with TF 2.21 / tf_keras 2.21 by
``tests/data/tf/make_tf_fixtures.py``, which also wrote ``expected.json`` with TF's own answers
(``tf.train.list_variables``, ``load_checkpoint(...).get_tensor``, the object graph decoded with TF's proto
classes, ``read_fingerprint``). Every assertion below compares ckptdoctor with those answers.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from ckptdoctor.errors import InputError
from ckptdoctor.inspection import inspect
from ckptdoctor.readers import protowire as pw
from ckptdoctor.readers import read_path, tf_bundle, tf_savedmodel
from ckptdoctor.snapshot import Snapshot
from cli_helpers import invoke

DATA = Path(__file__).parent / "data" / "tf"
EXPECTED = json.loads((DATA / "expected.json").read_text())
GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"


def _all_bundles() -> list[tuple[str, str, dict]]:
    """(id, path to read, TF's description) for every checkpoint, SavedModels included."""
    out = [(k, str(DATA / (k + ".index")), v) for k, v in EXPECTED["checkpoints"].items()]
    out += [(k, str(DATA / k), v["checkpoint"]) for k, v in EXPECTED["savedmodels"].items()]
    return out


BUNDLES = _all_bundles()


@pytest.fixture(scope="module")
def snaps() -> dict[str, Snapshot]:
    return {key: read_path(path)[0] for key, path, _ in BUNDLES}


def _values_match(t, want: dict) -> None:
    arr = t.read()
    assert arr.shape == tuple(want["shape"])
    flat = arr.reshape(-1)
    if want["dtype"] == "string":
        assert [bytes(v).decode("latin1") for v in flat[:5]] == want["first"]
    elif arr.dtype.kind == "c":
        assert np.abs(flat).astype(np.float64).sum() == pytest.approx(want["sum"], rel=1e-6)
        assert [[float(v.real), float(v.imag)] for v in flat[:5]] == want["first"]
    else:
        assert flat.astype(np.float64).sum() == pytest.approx(want["sum"], rel=1e-6, abs=1e-9)
        assert [float(v) for v in flat[:5].astype(np.float64)] == want["first"]


@pytest.mark.parametrize(("key", "path", "tf"), BUNDLES, ids=[b[0] for b in BUNDLES])
def test_names_shapes_dtypes_values_match_tensorflow(snaps, key, path, tf) -> None:
    snap = snaps[key]
    want = {n: v for n, v in tf["variables"].items() if n != GRAPH}
    assert sorted(snap.names) == sorted(want)
    for t in snap.tensors:
        w = want[t.name]
        assert list(t.shape) == w["shape"], t.name
        assert t.dtype == w["dtype"], t.name  # TF's dtype names are the canonical (torch) spellings here
        assert t.attrs["tf_dtype"] == tf_bundle.TF_DTYPES[w["dtype_enum"]][0]
        _values_match(t, w)


@pytest.mark.parametrize(("key", "path", "tf"), BUNDLES, ids=[b[0] for b in BUNDLES])
def test_object_graph_names_match_tensorflow(snaps, key, path, tf) -> None:
    snap = snaps[key]
    names = {t.name: t.attrs.get("full_name") for t in snap.tensors}
    if not tf["full_names"]:  # TF1 Saver checkpoint: no object graph, keys are the variable names
        assert all(v is None for v in names.values())
        return
    assert {k: v for k, v in names.items()} == {k: v for k, v in tf["full_names"].items() if k in names}
    assert snap.metadata["object_graph"]["nodes"] == tf["object_graph_nodes"]


def test_keras_layer_names_from_object_graph(snaps) -> None:
    snap = snaps["weights/chatbot"]
    layers = {t.attrs["layer"] for t in snap.tensors}
    assert layers == {n.split("/")[0] for n in EXPECTED["checkpoints"]["weights/chatbot"]["full_names"].values()}
    assert len(layers) == 3
    kernel = snap.tensor("layer_with_weights-1/cell/kernel/.ATTRIBUTES/VARIABLE_VALUE")
    assert kernel.attrs["full_name"].endswith("lstm_cell/kernel")


def test_optimizer_slots_are_marked(snaps) -> None:
    snap = snaps["trainckpt/ckpt-1"]
    for t in snap.tensors:
        top = t.name.split("/", 1)[0]
        expected = {"optimizer": "optimizer", "save_counter": "checkpoint-counter"}.get(top, "weight")
        assert t.attrs["role"] == expected, t.name
    slots = [t for t in snap.tensors if t.attrs.get("full_name", "").startswith("Adam/m/")]
    assert len(slots) == 9  # one `m` per weight of the Bidirectional model
    legacy = snaps["legacyopt/ckpt-1"]
    slot = legacy.tensor("model/layer_with_weights-0/kernel/.OPTIMIZER_SLOT/optimizer/m/.ATTRIBUTES/VARIABLE_VALUE")
    assert slot.attrs["role"] == "optimizer"
    assert slot.attrs["slot"] == "m"
    assert slot.attrs["slot_of"] == legacy.tensor("model/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE"
                                                  ).attrs["full_name"]


def test_shards_and_slices(snaps) -> None:
    sharded = snaps["sharded/ckpt-1"]
    assert sharded.metadata["num_shards"] == len(EXPECTED["shard_files"]["sharded/ckpt-1"]) > 1
    assert sharded.metadata["data_files"] == EXPECTED["shard_files"]["sharded/ckpt-1"]
    split = [t for t in sharded.tensors if t.attrs.get("partitioned")]
    assert split and any(len(t.attrs["slice_shards"]) > 1 for t in split)  # one tensor across two files
    part = snaps["partitioned/model.ckpt"].tensor("part")
    assert part.attrs["slices"] == [[[0, 2], [0, 3]], [[2, 2], [0, 3]]]


def test_entry_checksums_locate_the_right_bytes() -> None:
    """The crc32c TF stored per tensor, recomputed over the bytes at the offset we report."""
    bundle = tf_bundle.read_bundle(str(DATA / "weights" / "chatbot.index"))
    numeric = [e for e in bundle.entries if e.dtype_enum != tf_bundle.DT_STRING]  # strings: crc of another layout
    assert len(numeric) == 6
    for e in numeric:
        with open(bundle.data_path(e.shard_id), "rb") as fh:
            fh.seek(e.offset)
            raw = fh.read(e.size)
        assert tf_bundle.mask_crc(tf_bundle.crc32c(raw)) == e.crc32c, e.key


# ------------------------------------------------------------------------------------------ SavedModel
@pytest.mark.parametrize("name", sorted(EXPECTED["savedmodels"]))
def test_savedmodel_metadata_matches_tensorflow(snaps, name) -> None:
    snap, tf = snaps[name], EXPECTED["savedmodels"][name]
    assert snap.format == "tf-savedmodel" and snap.framework == "tensorflow"
    sm = snap.metadata["saved_model"]
    assert snap.framework_version == tf["saved_model"]["tensorflow_version"]
    assert sm["tags"] == tf["saved_model"]["tags"]
    assert sm["signatures"] == tf["saved_model"]["signatures"]
    assert sm["function_count"] == len(tf["saved_model"]["functions"])
    assert sm["schema_version"] == tf["saved_model"]["schema_version"]
    fp = {k: v for k, v in snap.metadata["fingerprint"].items() if k in tf["fingerprint"]}
    assert fp == {k: v for k, v in tf["fingerprint"].items() if v or k in fp}
    assert snap.metadata["keras_metadata"] == ("keras_metadata" in tf)
    if "keras_metadata" in tf:
        assert snap.metadata["keras_objects"] == {n["node_path"]: n["identifier"] for n in tf["keras_metadata"]}
        assert [layer["name"] for layer in snap.layers] == tf["layer_names"]
        assert snap.config["class_name"] == tf["root_class_name"]
        assert snap.metadata["keras_version"] == tf["keras_version"]
        assert all(c.builtin for c in snap.classes)
        assert {"Sequential", "Embedding", "LSTM", "Dense"} <= {c.name for c in snap.classes}


def test_savedmodel_layers_carry_their_weights(snaps) -> None:
    snap = snaps["chatbot_savedmodel"]
    lstm = next(layer for layer in snap.layers if layer["class_name"] == "LSTM")
    assert lstm["hyperparameters"]["units"] == 16
    full = sorted(w["full_name"] for w in lstm["weights"])
    assert full == sorted(n.removesuffix(":0") for n in EXPECTED["chatbot_weights"] if n.startswith("lstm/"))
    bidi = next(layer for layer in snaps["bidi_savedmodel"].layers if layer["class_name"] == "Bidirectional")
    assert len(bidi["weights"]) == 6


def test_untraced_function_names_listed(snaps) -> None:
    tf = EXPECTED["savedmodels"]["bow_tfsaved"]["saved_model"]
    layers = {f.split("__inference_", 1)[1].rsplit("_layer_call", 1)[0] for f in tf["functions"] if "_layer_call" in f}
    assert snaps["bow_tfsaved"].metadata["saved_model"]["layer_call_functions"] == sorted(layers)


def test_port_to_keras3_by_order_and_shape(snaps) -> None:
    """The chatbot's variables set into a Keras 3 model built in code predict what tf.keras predicted."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    model = keras.Sequential([keras.Input((5,), dtype="int32"), keras.layers.Embedding(100, 8),
                              keras.layers.LSTM(16), keras.layers.Dense(2, activation="softmax")])
    lists = tf_savedmodel.keras_weight_lists(snaps["chatbot_savedmodel"])
    assert list(lists) == ["embedding", "lstm", "dense"]
    for layer, arrays in zip([la for la in model.layers if la.weights], lists.values(), strict=True):
        layer.set_weights(arrays)
    probe = EXPECTED["chatbot_probe"]
    got = model.predict(np.array(probe["x"], dtype="int32"), verbose=0)
    np.testing.assert_allclose(got, np.array(probe["y"]), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------ checks
def _codes(snap: Snapshot) -> set[str]:
    return {d.code for d in snap.diagnostics}


@pytest.fixture(scope="module")
def inspected() -> dict[str, Snapshot]:
    return {os.path.relpath(s.path, DATA): s for s in inspect(DATA)}


def test_folder_reads_each_savedmodel_and_checkpoint_once(inspected) -> None:
    want = {k + ".index" for k in EXPECTED["checkpoints"]} | set(EXPECTED["savedmodels"])
    assert set(inspected) == want
    assert all(s.format in ("tf-checkpoint", "tf-savedmodel") for s in inspected.values())


def test_checks(inspected) -> None:
    assert "F401" in _codes(inspected["bow_tfsaved"])
    assert "F401" not in _codes(inspected["chatbot_savedmodel"])
    assert {"F402"} <= _codes(inspected["chatbot_savedmodel"])
    assert "F403" in _codes(inspected["trainckpt/ckpt-1.index"])
    assert "F403" in _codes(inspected["legacyopt/ckpt-1.index"])
    assert "F403" not in _codes(inspected["weights/chatbot.index"])
    loose = next(d for d in inspected["bow_tfsaved"].diagnostics if d.code == "F404")
    assert all("keras_api/metrics" in n for n in loose.found)
    assert "F404" not in _codes(inspected["chatbot_savedmodel"])
    f402 = next(d for d in inspected["chatbot_savedmodel"].diagnostics if d.code == "F402")
    # the Keras 3 error text quoted in the rule is the one Keras 3.15 raised for this folder
    measured = EXPECTED["messages"]["keras3_load_model_savedmodel"].replace("<dir>/chatbot_savedmodel", "X")
    assert f402.framework_behavior.replace(inspected["chatbot_savedmodel"].path, "X") == measured


def test_prefix_and_data_shard_paths_resolve_to_the_index() -> None:
    by_prefix = read_path(DATA / "trainckpt" / "ckpt-1")[0]
    by_shard = read_path(DATA / "trainckpt" / "ckpt-1.data-00000-of-00001")[0]
    by_pb = read_path(DATA / "chatbot_savedmodel" / "saved_model.pb")[0]
    assert by_prefix.path == by_shard.path == str(DATA / "trainckpt" / "ckpt-1.index")
    assert by_pb.format == "tf-savedmodel" and by_pb.path == str(DATA / "chatbot_savedmodel")


def test_nothing_imports_tensorflow() -> None:
    code = ("import sys\nfrom ckptdoctor.inspection import inspect\n"
            f"snaps = inspect({str(DATA)!r})\n"
            "n = sum(1 for s in snaps for t in s.tensors if t.loader and t.read() is not None)\n"
            "assert n > 50, n\n"
            "assert 'tensorflow' not in sys.modules and 'google.protobuf' not in sys.modules\n"
            "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


# ------------------------------------------------------------------------------------------ bad input
def _cli(*args: str):
    return invoke(list(args))


def _copy_checkpoint(tmp_path: Path) -> Path:
    shutil.copytree(DATA / "weights", tmp_path / "w")
    return tmp_path / "w" / "chatbot.index"


def test_truncated_index_is_f103(tmp_path) -> None:
    index = _copy_checkpoint(tmp_path)
    raw = index.read_bytes()
    index.write_bytes(raw[: len(raw) // 2])
    res = _cli("inspect", str(index))
    assert res.exit_code == 2
    assert "error[F103]" in res.output and "Traceback" not in res.output
    with pytest.raises(InputError) as exc:
        read_path(index)
    assert exc.value.code == "F103"


def test_corrupt_or_compressed_block_is_f107(tmp_path) -> None:
    index = _copy_checkpoint(tmp_path)
    raw = bytearray(index.read_bytes())
    raw[20] ^= 0xFF  # inside the first data block: the block checksum no longer matches
    index.write_bytes(bytes(raw))
    with pytest.raises(InputError) as exc:
        read_path(index)
    assert exc.value.code == "F107" and "checksum" in exc.value.message
    # a block marked Snappy-compressed (TF never writes one for a checkpoint index)
    block = _table([(b"", _header(1))], compression=1)
    index.write_bytes(block)
    res = _cli("inspect", str(index))
    assert res.exit_code == 2 and "error[F107]" in res.output and "Snappy" in res.output


def test_missing_data_shard_is_reported(tmp_path) -> None:
    index = _copy_checkpoint(tmp_path)
    os.remove(tmp_path / "w" / "chatbot.data-00000-of-00001")
    snap = inspect(index)[0]
    assert "F405" in _codes(snap)
    assert snap.tensors and all(t.loader is None for t in snap.tensors)
    assert sorted(snap.names) == sorted(n for n in EXPECTED["checkpoints"]["weights/chatbot"]["variables"]
                                        if n != GRAPH)
    res = _cli("inspect", str(index))
    assert res.exit_code == 1 and "F405" in res.output
    # a lone data shard whose index is gone is not mistaken for anything else
    os.remove(index)
    (tmp_path / "w" / "x.data-00000-of-00001").write_bytes(b"\x00" * 64)
    res = _cli("inspect", str(tmp_path / "w" / "x.data-00000-of-00001"))
    assert res.exit_code == 2 and "Traceback" not in res.output


# a minimal SSTable writer, for hostile indexes TF itself would never write
def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(num << 3) + _varint(value)
    return _varint(num << 3 | 2) + _varint(len(value)) + value


def _header(shards: int) -> bytes:
    return _field(1, shards) + _field(3, _field(1, 1))


def _entry(shape: list[int], offset: int, size: int, dtype: int = 1) -> bytes:
    dims = b"".join(_field(2, _field(1, d)) for d in shape)
    return _field(1, dtype) + _field(2, dims) + _field(4, offset) + _field(5, size)


def _table(pairs: list[tuple[bytes, bytes]], compression: int = 0) -> bytes:
    block = b"".join(_varint(0) + _varint(len(k)) + _varint(len(v)) + k + v for k, v in pairs)
    block += struct.pack("<II", 0, 1)  # one restart point at 0
    out = bytearray()

    def add(contents: bytes, kind: int) -> tuple[int, int]:
        off = len(out)
        crc = tf_bundle.mask_crc(tf_bundle.crc32c(contents + bytes([kind])))
        out.extend(contents + bytes([kind]) + struct.pack("<I", crc))
        return off, len(contents)

    data_off, data_len = add(block, compression)
    meta_off, meta_len = add(struct.pack("<I", 0) + struct.pack("<I", 1), 0)
    handle = _varint(data_off) + _varint(data_len)
    index = _varint(0) + _varint(1) + _varint(len(handle)) + b"\xff" + handle + struct.pack("<II", 0, 1)
    index_off, index_len = add(index, 0)
    footer = _varint(meta_off) + _varint(meta_len) + _varint(index_off) + _varint(index_len)
    out.extend(footer.ljust(40, b"\x00") + tf_bundle.MAGIC_BYTES)
    return bytes(out)


@pytest.mark.parametrize(("entry", "code", "words"), [
    (_entry([1 << 30, 1 << 30], 0, 4 << 60), "F103", "has only"),  # 4 EiB claimed, 64-byte data file
    (_entry([4], 1 << 62, 16), "F103", "has only"),  # offset far past the end
    (_entry([4], 0, 1 << 40), "F107", "should hold"),  # size disagrees with the shape
    (_entry([4], 0, 16) + _field(3, 7), "F107", "shard 7"),  # shard id beyond the header's count
])
def test_absurd_entries_fail_before_any_allocation(tmp_path, entry, code, words) -> None:
    index = tmp_path / "bad.index"
    index.write_bytes(_table([(b"", _header(1)), (b"w", entry)]))
    (tmp_path / "bad.data-00000-of-00001").write_bytes(b"\x00" * 64)
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as exc:
            read_path(index)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert exc.value.code == code and words in exc.value.message
    assert peak < 2 << 20


def test_hand_written_table_round_trips(tmp_path) -> None:
    """The writer above is sound: a valid entry reads back with its values (so the failures above are real)."""
    index = tmp_path / "ok.index"
    index.write_bytes(_table([(b"", _header(1)), (b"w", _entry([2, 2], 8, 16))]))
    (tmp_path / "ok.data-00000-of-00001").write_bytes(b"\x00" * 8 + np.arange(4, dtype="<f4").tobytes())
    snap = read_path(index)[0]
    assert snap.format == "tf-checkpoint"
    np.testing.assert_array_equal(snap.tensor("w").read(), np.arange(4, dtype=np.float32).reshape(2, 2))


def test_protowire_rejects_lengths_past_the_end() -> None:
    with pytest.raises(pw.ProtoError):
        list(pw.fields(_varint(1 << 3 | 2) + _varint(1 << 40) + b"abc"))
    with pytest.raises(pw.ProtoError):
        pw.read_varint(b"\xff" * 11, 0)


PRE_25 = Path(__file__).parent / "data" / "pypi" / "basic_pitch_tf241"


def test_a_real_tf_2_4_keras_savedmodel_is_rebuildable_not_configless() -> None:
    """Basic Pitch's SavedModel (PyPI wheel, TF 2.4.1) has no keras_metadata.pb: tf.keras then kept each
    layer's config inside saved_model.pb, and tf_keras load_model rebuilds from it (after its warning)."""
    [snap] = inspect(PRE_25)
    assert snap.format == "tf-savedmodel" and snap.framework_version == "2.4.1"
    sm = snap.metadata["saved_model"]
    assert 0 < sm["keras_inline_configs"] <= sm["keras_objects"]
    [f401] = [d for d in snap.diagnostics if d.code == "F401"]
    assert str(f401.severity) == "info" and "2.4.1" in f401.message
    assert "SavedModel saved prior to TF 2.5 detected" in f401.framework_behavior
    assert "F402" in _codes(snap)  # Keras 3 still cannot load the folder
    kernels = [t for t in snap.tensors if str(t.attrs.get("layer", "")).startswith("conv2d")
               and t.name.endswith("kernel/.ATTRIBUTES/VARIABLE_VALUE")]
    assert kernels and all(len(t.shape) == 4 for t in kernels)  # Keras' HWIO conv kernels


def test_configless_savedmodel_from_tf_saved_model_save_stays_a_warning(inspected) -> None:
    assert inspected["bow_tfsaved"].metadata["saved_model"].get("keras_inline_configs", 0) == 0
    [f401] = [d for d in inspected["bow_tfsaved"].diagnostics if d.code == "F401"]
    assert str(f401.severity) == "warning"
