"""TensorFlow SavedModel folders (tf.keras 2.x ``model.save("dir")``, ``tf.saved_model.save``), read
without TensorFlow.

A SavedModel folder holds::

    saved_model.pb          SavedModel proto: MetaGraphDef(s), signatures, traced tf.functions (only sniffed)
    keras_metadata.pb       (tf.keras >= 2.5 model.save) SavedMetadata: one JSON layer config per Keras object
    fingerprint.pb          (TF >= 2.12) FingerprintDef: hashes of the graph, signatures and checkpoint
    variables/variables.index + variables.data-*   the variables, a tensor bundle (see tf_bundle)

The graph is never parsed beyond its top-level fields: we read the TF version, the tags, the
signature names and the names of the traced functions (``__inference_<layer>_layer_call_fn_<n>``,
the functions the "Found untraced functions" warning talks about).
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import re
from typing import Any

from ckptdoctor.errors import InputError
from ckptdoctor.readers import keras_config as kc
from ckptdoctor.readers import protowire as pw
from ckptdoctor.readers import tf_bundle
from ckptdoctor.rules import file_format as F
from ckptdoctor.snapshot import Snapshot

SAVED_MODEL = "saved_model.pb"
KERAS_METADATA = "keras_metadata.pb"
FINGERPRINT = "fingerprint.pb"
MAX_METADATA = 256 << 20  # a keras_metadata.pb larger than this is not one
_FN_RE = re.compile(r"^__inference_(.+?)_(layer_call_fn|layer_call_and_return_conditional_losses|"
                    r"layer_call_and_return_all_conditional_losses)_\d+$")
FINGERPRINT_FIELDS = {1: "saved_model_checksum", 2: "graph_def_program_hash", 3: "signature_def_hash",
                      4: "saved_object_graph_hash", 5: "checkpoint_hash"}


def is_savedmodel_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, SAVED_MODEL))


def read(path: str, fmt: str = "tf-savedmodel") -> Snapshot:
    """A SavedModel folder (``path`` may also be its ``saved_model.pb``)."""
    folder = os.path.dirname(path) if os.path.basename(path) == SAVED_MODEL else path
    if not is_savedmodel_dir(folder):
        raise InputError(F.NOT_A_MODEL.code, f"not a SavedModel folder (no {SAVED_MODEL})", folder)
    index = os.path.join(folder, "variables", "variables.index")
    if os.path.isfile(index):
        bundle = tf_bundle.read_bundle(index)
        snap = tf_bundle.bundle_snapshot(bundle, folder, "tf-savedmodel")
    else:
        snap = Snapshot(path=folder, format="tf-savedmodel", framework="tensorflow")
        snap.metadata["variables"] = "none (the SavedModel has no variables/ folder)"
    snap.path = folder
    snap.metadata["files"] = sorted(n for n in os.listdir(folder) if not n.startswith("."))
    _read_saved_model_pb(snap, os.path.join(folder, SAVED_MODEL))
    _read_fingerprint(snap, os.path.join(folder, FINGERPRINT))
    snap.metadata["keras_metadata"] = os.path.isfile(os.path.join(folder, KERAS_METADATA))
    if snap.metadata["keras_metadata"]:
        _read_keras_metadata(snap, os.path.join(folder, KERAS_METADATA))
    snap.file_size = _tree_size(folder)
    return snap


def _tree_size(folder: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(dirpath, name))
    return total


# ------------------------------------------------------------------------------------------ saved_model.pb
def _read_saved_model_pb(snap: Snapshot, path: str) -> None:
    """Top-level fields only: SavedModel{schema_version=1, meta_graphs=2{meta_info_def=1{tags=4,
    tensorflow_version=5, tensorflow_git_version=6}, graph_def=2{library=2{function=1{signature=1{name=1}}}},
    signature_def=5 (map<string, SignatureDef>)}}."""
    info: dict[str, Any] = {}
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:
                raise InputError(F.EMPTY_FILE.code, "saved_model.pb is empty (0 bytes)", path,
                                 "save the model again")
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            try:
                with memoryview(mm) as view:
                    _walk_saved_model(view, info)
            finally:
                with contextlib.suppress(BufferError):  # slices live on in a parse error's traceback: GC closes it
                    mm.close()
    except pw.ProtoError as exc:
        raise InputError(F.CORRUPT_HEADER.code, f"saved_model.pb is not a valid SavedModel proto ({exc})", path,
                         "save or copy the SavedModel folder again") from None
    except OSError as exc:
        raise InputError(F.UNREADABLE.code, f"cannot read saved_model.pb ({exc.strerror or exc})", path) from None
    functions: list[str] = info.pop("functions", [])
    layer_fns = sorted({m.group(1) for f in functions if (m := _FN_RE.match(f))})
    info["function_count"] = len(functions)
    if layer_fns:
        info["layer_call_functions"] = layer_fns  # layers whose call was traced and saved
    snap.metadata["saved_model"] = info
    if isinstance(info.get("tensorflow_version"), str):
        snap.framework_version = info["tensorflow_version"]


def _walk_saved_model(view: memoryview, info: dict[str, Any]) -> None:
    metagraphs = 0
    for num, _w, value in pw.fields(view):
        if num == 1 and isinstance(value, int):
            info["schema_version"] = value
        elif num == 2 and not isinstance(value, int):
            metagraphs += 1
            if metagraphs == 1:
                _walk_metagraph(value, info)
    info["meta_graphs"] = metagraphs


def _walk_metagraph(view: memoryview, info: dict[str, Any]) -> None:
    signatures: list[str] = []
    functions: list[str] = []
    for num, _w, value in pw.fields(view):
        if isinstance(value, int):
            continue
        if num == 1:  # MetaInfoDef
            tags: list[str] = []
            for n2, _w2, v2 in pw.fields(value):
                if n2 == 4:
                    tags.append(pw.text(v2))
                elif n2 == 5:
                    info["tensorflow_version"] = pw.text(v2)
                elif n2 == 6:
                    info["tensorflow_git_version"] = pw.text(v2)
            info["tags"] = tags
        elif num == 2:  # GraphDef: library=2 -> function=1 -> signature=1 -> name=1
            for n2, _w2, v2 in pw.fields(value):
                if n2 == 2 and not isinstance(v2, int):
                    for n3, _w3, v3 in pw.fields(v2):
                        if n3 == 1 and not isinstance(v3, int):
                            functions.extend(_function_name(v3))
        elif num == 5:  # map entry {key=1, value=2}
            for n2, _w2, v2 in pw.fields(value):
                if n2 == 1:
                    signatures.append(pw.text(v2))
        elif num == 7:  # SavedObjectGraph
            _walk_object_graph(value, info)
    info["signatures"] = sorted(signatures)
    info["functions"] = sorted(functions)


def _walk_object_graph(view: memoryview, info: dict[str, Any]) -> None:
    """SavedObjectGraph{nodes=1 SavedObject{user_object=4 SavedUserObject{identifier=1, metadata=3}}}.

    tf.keras before TF 2.5 had no keras_metadata.pb: ``model.save`` wrote each layer's config into its
    user object's ``metadata`` here, and tf_keras ``load_model`` still rebuilds the layers from it."""
    keras_objects = 0
    inline_configs = 0
    for num, _w, node in pw.fields(view):
        if num != 1 or isinstance(node, int):
            continue
        for n2, _w2, kind in pw.fields(node):
            if n2 != 4 or isinstance(kind, int):
                continue
            identifier, has_metadata = "", False
            for n3, _w3, v3 in pw.fields(kind):
                if n3 == 1 and not isinstance(v3, int):
                    identifier = pw.text(v3)
                elif n3 == 3 and not isinstance(v3, int) and len(v3):
                    has_metadata = True
            if identifier.startswith("_tf_keras_"):
                keras_objects += 1
                inline_configs += has_metadata
    if keras_objects:
        info["keras_objects"] = keras_objects
        info["keras_inline_configs"] = inline_configs


def _function_name(fdef: memoryview) -> list[str]:
    for num, _w, value in pw.fields(fdef):
        if num == 1 and not isinstance(value, int):
            for n2, _w2, v2 in pw.fields(value):
                if n2 == 1:
                    return [pw.text(v2)]
    return []


# ------------------------------------------------------------------------------------------ fingerprint.pb
def _read_fingerprint(snap: Snapshot, path: str) -> None:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(1 << 16)
    except OSError:
        return
    out: dict[str, Any] = {}
    try:
        for num, _w, value in pw.fields(raw):
            if num in FINGERPRINT_FIELDS and isinstance(value, int):
                out[FINGERPRINT_FIELDS[num]] = value
            elif num == 6 and not isinstance(value, int):
                out["version"] = tf_bundle._version_def(value)
    except pw.ProtoError as exc:
        out["error"] = f"fingerprint.pb is damaged ({exc})"
    snap.metadata["fingerprint"] = out


# ------------------------------------------------------------------------------------------ keras_metadata.pb
def parse_keras_metadata(raw: bytes | memoryview) -> list[dict[str, Any]]:
    """SavedMetadata{nodes=1 SavedObject{node_id=2, node_path=3, identifier=4, metadata=5 (JSON), version=6}}."""
    nodes: list[dict[str, Any]] = []
    for num, _w, value in pw.fields(raw):
        if num != 1 or isinstance(value, int):
            continue
        node: dict[str, Any] = {"node_id": 0, "node_path": "", "identifier": "", "metadata": None}
        for n2, _w2, v2 in pw.fields(value):
            if n2 == 2 and isinstance(v2, int):
                node["node_id"] = v2
            elif n2 == 3:
                node["node_path"] = pw.text(v2)
            elif n2 == 4:
                node["identifier"] = pw.text(v2)
            elif n2 == 5:
                try:
                    node["metadata"] = json.loads(pw.text(v2))
                except ValueError:
                    node["metadata"] = None
                    node["metadata_error"] = "not JSON"
            elif n2 == 6 and not isinstance(v2, int):
                node["version"] = tf_bundle._version_def(v2)
        nodes.append(node)
    return nodes


def _read_keras_metadata(snap: Snapshot, path: str) -> None:
    size = os.path.getsize(path)
    if size > MAX_METADATA:
        raise InputError(F.CORRUPT_HEADER.code, f"keras_metadata.pb claims {size:,} bytes: not Keras metadata", path)
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        nodes = parse_keras_metadata(raw)
    except pw.ProtoError as exc:
        raise InputError(F.CORRUPT_HEADER.code, f"keras_metadata.pb is damaged ({exc})", path,
                         "save the model again with model.save()") from None
    snap.metadata["keras_objects"] = {n["node_path"]: n["identifier"] for n in nodes}
    root = next((n["metadata"] for n in nodes if n["node_path"] == "root" and isinstance(n["metadata"], dict)), None)
    if root is None:
        return
    for key in ("keras_version", "backend"):
        if isinstance(root.get(key), str):
            snap.metadata[key] = root[key]
    config = root.get("model_config")
    if not isinstance(config, dict) and isinstance(root.get("class_name"), str):
        config = {"class_name": root["class_name"], "config": root.get("config")}
    if isinstance(config, dict):
        snap.config = config
        snap.classes = kc.class_refs(config, "model_config")
        snap.layers = kc.layer_list(config)
    training = root.get("training_config")
    if isinstance(training, dict):
        snap.training_config = training
        extra = kc.class_refs(training, "training_config")
        for c in extra:
            c.role = "keras-object"
        snap.classes.extend(extra)

    # object path (root.layer_with_weights-1.cell) -> the Keras layer name of its top-level layer
    names: dict[str, str] = {}
    for n in nodes:
        meta = n["metadata"]
        if isinstance(meta, dict) and isinstance(meta.get("name"), str) and n["node_path"] != "root":
            names[n["node_path"]] = meta["name"]
    by_name = {entry["name"]: entry for entry in snap.layers}
    for t in snap.tensors:
        if t.attrs.get("role") != "weight":
            continue
        obj = "root." + str(t.attrs.get("object_path") or _object_path_from_key(t.name)).replace("/", ".")
        parts = obj.split(".")
        top = names.get(".".join(parts[:2]))  # the layer directly under the model
        if top is not None:
            t.attrs["layer"] = top
            entry = by_name.get(top)
            if entry is not None:
                entry.setdefault("weights", []).append({"name": t.name, "shape": list(t.shape), "dtype": t.dtype,
                                                        "full_name": t.attrs.get("full_name")})


def _object_path_from_key(key: str) -> str:
    return key.split("/.ATTRIBUTES/", 1)[0]



# ------------------------------------------------------------------------------------------ porting helper
_LAYER_RE = re.compile(r"(?:^|/)layer_with_weights-(\d+)/(.+)$")
# order in which Keras layers create their variables (so that layer.set_weights accepts the list)
_VARIABLE_ORDER = ("embeddings", "kernel", "depthwise_kernel", "pointwise_kernel", "recurrent_kernel", "bias",
                   "gamma", "beta", "moving_mean", "moving_variance")
_SUBOBJECT_ORDER = {"forward_layer": 0, "backward_layer": 1}


def keras_weight_lists(snapshot: Snapshot) -> dict[str, list[Any]]:
    """Each Keras layer's arrays in the order the layer creates its variables, from a TF bundle.

    Keys are layer names (``embedding``, ``lstm`` ...) when the file names them, else the object path
    (``layer_with_weights-1``). The order follows ``layer_with_weights-N``, i.e. the model's layers with
    weights, so ``for layer, arrays in zip(weighted_layers, lists.values()): layer.set_weights(arrays)``
    ports a tf.keras 2.x model into a Keras 3 model built in code. Values are read from the file here.
    """
    groups: dict[int, list[tuple[tuple[int, ...], Any]]] = {}
    labels: dict[int, str] = {}
    for t in snapshot.tensors:
        if t.attrs.get("role") != "weight":
            continue
        obj = str(t.attrs.get("object_path") or t.name.split("/.ATTRIBUTES/", 1)[0])
        m = _LAYER_RE.search(obj)
        if not m:
            continue
        index, rest = int(m.group(1)), m.group(2).split("/")
        var = rest[-1]
        var_rank = _VARIABLE_ORDER.index(var) if var in _VARIABLE_ORDER else len(_VARIABLE_ORDER)
        rank = (*(_SUBOBJECT_ORDER.get(p, 0) for p in rest[:-1]), var_rank)
        groups.setdefault(index, []).append((rank, t))
        labels.setdefault(index, str(t.attrs.get("layer") or f"layer_with_weights-{index}"))
    return {labels[i]: [t.read() for _rank, t in sorted(groups[i], key=lambda x: x[0])] for i in sorted(groups)}
