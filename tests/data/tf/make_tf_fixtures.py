"""Build the TensorFlow fixtures in this folder and record what TensorFlow itself reports about them.

ckptdoctor reads TF checkpoints and SavedModel folders WITHOUT TensorFlow, and TensorFlow is not part of
the project's environment. So the fixtures are made once, here, in a throwaway venv, and committed with
``expected.json``: TF's own answers (``tf.train.list_variables``, ``tf.train.load_checkpoint`` dtypes and
values, the object graph decoded with TF's ``TrackableObjectGraph`` proto, ``keras_metadata.pb`` decoded
with tf_keras' ``SavedMetadata`` proto, ``tf.saved_model.experimental.read_fingerprint``). The tests in
``tests/test_tf_readers.py`` compare ckptdoctor's reader against these answers.

How they were made (2026, Linux x86_64, CPython 3.11.7)::

    python3 -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0 tf_keras==2.21.0   # numpy 2.4.6, protobuf 7.36.2
    TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2 /tmp/tfvenv/bin/python tests/data/tf/make_tf_fixtures.py
    rm -rf /tmp/tfvenv

What is made (all tiny; the models are the article's chatbot Embedding(100,8) -> LSTM(16) -> Dense(2)
and a Bidirectional LSTM, built with tf_keras 2.21 = the tf.keras 2.x API):

* ``chatbot_savedmodel/``: ``model.save(dir)`` (tf_keras SavedModel with ``keras_metadata.pb``, compiled
  and trained one step), saved with ``save_traces=False, include_optimizer=False`` to keep it small;
* ``bow_tfsaved/``: ``tf.saved_model.save(model, dir)`` of a bag-of-words chatbot Embedding(100,8) ->
  GlobalAveragePooling1D -> Dense(2) (the LSTM one writes a 660 KB ``saved_model.pb``): no
  ``keras_metadata.pb``;
* ``bidi_savedmodel/``: ``model.save(dir)`` of the Bidirectional model (same options);
* ``weights/chatbot``: ``model.save_weights("weights/chatbot")`` (TF checkpoint format, with ``checkpoint``)
  of an uncompiled copy of the trained chatbot (weights only);
* ``trainckpt/ckpt-1``: ``tf.train.Checkpoint(model=bidi, optimizer=adam).save()`` after one train step;
* ``legacyopt/ckpt-1``: a Dense model trained one step with the legacy ``optimizers.legacy.Adam``, whose
  slots are saved as ``.OPTIMIZER_SLOT`` keys;
* ``dtypes/ckpt-1``: ``tf.train.Checkpoint`` of tf.Variables of every dtype a bundle stores;
* ``sharded/ckpt-1``: the chatbot copy saved with ``CheckpointOptions(experimental_sharding_callback=
  MaxShardSizePolicy(...))``: several ``.data-NNNNN-of-MMMMM`` shards;
* ``partitioned/model.ckpt``: a TF1 ``Saver`` checkpoint of a variable partitioned in two slices.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
import tf_keras

HERE = os.path.dirname(os.path.abspath(__file__))


def chatbot() -> tf_keras.Model:
    return tf_keras.Sequential([
        tf_keras.Input(shape=(5,), dtype="int32"),
        tf_keras.layers.Embedding(100, 8),
        tf_keras.layers.LSTM(16),
        tf_keras.layers.Dense(2, activation="softmax"),
    ], name="chatbot")


def bidi() -> tf_keras.Model:
    return tf_keras.Sequential([
        tf_keras.Input(shape=(4,), dtype="int32"),
        tf_keras.layers.Embedding(30, 4),
        tf_keras.layers.Bidirectional(tf_keras.layers.LSTM(3)),
        tf_keras.layers.Dense(2),
    ], name="bidi")


def bag_of_words() -> tf_keras.Model:
    # tf.saved_model.save of an LSTM model writes a ~660 KB saved_model.pb (traced while loops); this
    # LSTM-free chatbot keeps the fixture small while showing the same thing: no keras_metadata.pb
    return tf_keras.Sequential([
        tf_keras.Input(shape=(5,), dtype="int32"),
        tf_keras.layers.Embedding(100, 8),
        tf_keras.layers.GlobalAveragePooling1D(),
        tf_keras.layers.Dense(2, activation="softmax"),
    ], name="bow_chatbot")


def train_one_step(model: tf_keras.Model, seq: int, vocab: int, classes: int) -> None:
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).integers(0, vocab, size=(4, seq)).astype("int32")
    y = np.random.default_rng(1).integers(0, classes, size=(4,)).astype("int32")
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)


def describe_checkpoint(prefix: str) -> dict:
    """Everything TF reports about one bundle: names, shapes, dtypes, value sums, object-graph names."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    reader = tf.train.load_checkpoint(prefix)
    dtypes = reader.get_variable_to_dtype_map()
    out: dict = {"variables": {}, "full_names": {}}
    for name, shape in tf.train.list_variables(prefix):
        dt = dtypes[name]
        entry = {"shape": list(shape), "dtype": dt.name, "dtype_enum": int(dt.as_datatype_enum)}
        value = reader.get_tensor(name)
        if dt == tf.string:
            if name == "_CHECKPOINTABLE_OBJECT_GRAPH":
                entry["nbytes"] = len(value)
            else:
                flat = np.asarray(value, dtype=object).reshape(-1)
                entry["first"] = [bytes(v).decode("latin1") for v in flat[:5]]
        else:
            arr = np.asarray(value)
            flat = arr.reshape(-1)
            if arr.dtype.kind == "c":
                entry["sum"] = float(np.abs(flat).astype(np.float64).sum())
                entry["first"] = [[float(v.real), float(v.imag)] for v in flat[:5]]
            else:
                entry["sum"] = float(flat.astype(np.float64).sum())
                entry["first"] = [float(v) for v in flat[:5].astype(np.float64)]
        out["variables"][name] = entry
    if "_CHECKPOINTABLE_OBJECT_GRAPH" in out["variables"]:
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
        for node in graph.nodes:
            for attr in node.attributes:
                out["full_names"][attr.checkpoint_key] = attr.full_name
        out["object_graph_nodes"] = len(graph.nodes)
    return out


def describe_savedmodel(path: str) -> dict:
    from tensorflow.core.protobuf import saved_model_pb2

    out: dict = {"files": sorted(os.listdir(path))}
    out["checkpoint"] = describe_checkpoint(os.path.join(path, "variables", "variables"))
    sm = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as fh:
        sm.ParseFromString(fh.read())
    mg = sm.meta_graphs[0]
    out["saved_model"] = {
        "schema_version": sm.saved_model_schema_version,
        "tags": list(mg.meta_info_def.tags),
        "tensorflow_version": mg.meta_info_def.tensorflow_version,
        "signatures": sorted(mg.signature_def.keys()),
        "functions": sorted(f.signature.name for f in mg.graph_def.library.function),
    }
    fp = tf.saved_model.experimental.read_fingerprint(path)
    out["fingerprint"] = {"saved_model_checksum": fp.saved_model_checksum,
                          "graph_def_program_hash": fp.graph_def_program_hash,
                          "signature_def_hash": fp.signature_def_hash,
                          "saved_object_graph_hash": fp.saved_object_graph_hash,
                          "checkpoint_hash": fp.checkpoint_hash}
    meta_path = os.path.join(path, "keras_metadata.pb")
    if os.path.exists(meta_path):
        from tf_keras.protobuf import saved_metadata_pb2

        meta = saved_metadata_pb2.SavedMetadata()
        with open(meta_path, "rb") as fh:
            meta.ParseFromString(fh.read())
        nodes = [{"node_id": n.node_id, "node_path": n.node_path, "identifier": n.identifier,
                  "metadata": json.loads(n.metadata)} for n in meta.nodes]
        out["keras_metadata"] = [{k: v for k, v in n.items() if k != "metadata"} for n in nodes]
        root = next(n for n in nodes if n["node_path"] == "root")["metadata"]
        out["root_class_name"] = root.get("class_name")
        out["keras_version"] = root.get("keras_version")
        cfg = root.get("config", {})
        out["layer_names"] = [layer["config"]["name"] for layer in cfg.get("layers", [])]
    return out


def error_of(func) -> str:
    try:
        func()
    except Exception as exc:  # record TF's exact message for the rule documentation
        return f"{type(exc).__name__}: {exc}"
    return "no error"


def main() -> None:
    tf.random.set_seed(0)
    np.random.seed(0)
    for name in os.listdir(HERE):
        full = os.path.join(HERE, name)
        if os.path.isdir(full) and name != "__pycache__":
            shutil.rmtree(full)
    expected: dict = {"versions": {"tensorflow": tf.__version__, "tf_keras": tf_keras.__version__,
                                   "numpy": np.__version__, "python": sys.version.split()[0]}}

    m = chatbot()
    train_one_step(m, 5, 100, 2)
    m.save(os.path.join(HERE, "chatbot_savedmodel"), save_format="tf", save_traces=False,
           include_optimizer=False)
    # save_weights of the trained model would include its Adam slots; a fresh copy holds the weights only
    plain = chatbot()
    plain.set_weights(m.get_weights())
    plain.save_weights(os.path.join(HERE, "weights", "chatbot"))
    expected["chatbot_weights"] = {w.name: list(w.shape) for w in m.weights}
    probe = (np.arange(10).reshape(2, 5) * 7 % 100).astype("int32")
    expected["chatbot_probe"] = {"x": probe.tolist(), "y": m.predict(probe, verbose=0).astype(float).tolist()}

    bow = bag_of_words()
    train_one_step(bow, 5, 100, 2)
    tf.saved_model.save(bow, os.path.join(HERE, "bow_tfsaved"))

    b = bidi()
    train_one_step(b, 4, 30, 2)
    b.save(os.path.join(HERE, "bidi_savedmodel"), save_format="tf", save_traces=False, include_optimizer=False)
    ckpt = tf.train.Checkpoint(model=b, optimizer=b.optimizer)
    train_prefix = ckpt.save(os.path.join(HERE, "trainckpt", "ckpt"))
    sharded = tf.train.Checkpoint(model=plain)
    opts = tf.train.CheckpointOptions(
        experimental_sharding_callback=tf.train.experimental.MaxShardSizePolicy(max_shard_size=4096))
    sharded_prefix = sharded.save(os.path.join(HERE, "sharded", "ckpt"), options=opts)

    # the legacy (OptimizerV2) optimizer tracks its slots as slot variables: `.OPTIMIZER_SLOT` keys
    small = tf_keras.Sequential([tf_keras.Input(shape=(3,)), tf_keras.layers.Dense(2)], name="small")
    small.compile(optimizer=tf_keras.optimizers.legacy.Adam(1e-3), loss="mse")
    small.fit(np.ones((2, 3), "float32"), np.zeros((2, 2), "float32"), verbose=0)
    legacy_prefix = tf.train.Checkpoint(model=small, optimizer=small.optimizer).save(
        os.path.join(HERE, "legacyopt", "ckpt"))

    variables = {
        "f16": tf.Variable(np.linspace(-1, 1, 6, dtype=np.float16).reshape(2, 3)),
        "bf16": tf.Variable(tf.constant([[0.5, -1.25], [3.0, 1e-3]], dtype=tf.bfloat16)),
        "f64": tf.Variable(np.arange(4, dtype=np.float64) / 3),
        "i8": tf.Variable(np.array([-128, 0, 127], dtype=np.int8)),
        "u8": tf.Variable(np.array([0, 200, 255], dtype=np.uint8)),
        "i16": tf.Variable(np.array([-300, 300], dtype=np.int16)),
        "i32": tf.Variable(np.array([[1, -2], [3, -4]], dtype=np.int32)),
        "i64": tf.Variable(np.array([2**40, -5], dtype=np.int64)),
        "flag": tf.Variable(np.array([True, False, True])),
        "c64": tf.Variable(np.array([1 + 2j, -3.5j], dtype=np.complex64)),
        "scalar": tf.Variable(3.25),
        "empty": tf.Variable(np.zeros((0, 3), dtype=np.float32)),
        "words": tf.Variable(tf.constant(["hello", "", "wörld"])),
    }
    dprefix = tf.train.Checkpoint(**variables).save(os.path.join(HERE, "dtypes", "ckpt"))

    graph = tf.Graph()
    with graph.as_default():
        part = tf.compat.v1.get_variable(
            "part", shape=[4, 3], initializer=tf.compat.v1.random_uniform_initializer(seed=1),
            partitioner=tf.compat.v1.fixed_size_partitioner(2))
        del part
        plain = tf.compat.v1.get_variable("plain", initializer=np.array([1.5, 2.5], dtype=np.float32))
        del plain
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            os.makedirs(os.path.join(HERE, "partitioned"), exist_ok=True)
            pprefix = saver.save(sess, os.path.join(HERE, "partitioned", "model.ckpt"), write_meta_graph=False)
    # Saver writes absolute paths into `checkpoint`; keep the committed fixture relocatable
    with open(os.path.join(HERE, "partitioned", "checkpoint"), "w") as fh:
        fh.write('model_checkpoint_path: "model.ckpt"\nall_model_checkpoint_paths: "model.ckpt"\n')

    rel = lambda p: os.path.relpath(p, HERE)  # noqa: E731
    expected["checkpoints"] = {
        "weights/chatbot": describe_checkpoint(os.path.join(HERE, "weights", "chatbot")),
        rel(train_prefix): describe_checkpoint(train_prefix),
        rel(legacy_prefix): describe_checkpoint(legacy_prefix),
        rel(dprefix): describe_checkpoint(dprefix),
        rel(sharded_prefix): describe_checkpoint(sharded_prefix),
        rel(pprefix): describe_checkpoint(pprefix),
    }
    expected["shard_files"] = {rel(sharded_prefix): sorted(f for f in os.listdir(os.path.dirname(sharded_prefix))
                                                          if ".data-" in f)}
    expected["savedmodels"] = {name: describe_savedmodel(os.path.join(HERE, name))
                               for name in ("chatbot_savedmodel", "bow_tfsaved", "bidi_savedmodel")}

    # TF's own messages for damaged checkpoints, measured on throwaway copies (for the rule documentation)
    tmp = os.path.join(HERE, "_tmp")
    shutil.copytree(os.path.join(HERE, "weights"), tmp)
    data = next(f for f in os.listdir(tmp) if ".data-" in f)
    os.remove(os.path.join(tmp, data))
    messages = {"data_shard_missing": error_of(lambda: tf.train.load_checkpoint(os.path.join(tmp, "chatbot"))
                                               .get_tensor("layer_with_weights-0/embeddings/.ATTRIBUTES/"
                                                           "VARIABLE_VALUE")),
                "load_weights_data_shard_missing": error_of(lambda: chatbot().load_weights(
                    os.path.join(tmp, "chatbot")))}
    with open(os.path.join(tmp, "chatbot.index"), "rb") as fh:
        raw = fh.read()
    with open(os.path.join(tmp, "chatbot.index"), "wb") as fh:
        fh.write(raw[: len(raw) // 2])
    messages["index_truncated"] = error_of(lambda: tf.train.list_variables(os.path.join(tmp, "chatbot")))
    shutil.rmtree(tmp)
    messages["keras3_load_model_savedmodel"] = error_of(
        lambda: __import__("keras").saving.load_model(os.path.join(HERE, "chatbot_savedmodel")))
    expected["messages"] = {k: v.replace(HERE, "<dir>") for k, v in messages.items()}

    with open(os.path.join(HERE, "expected.json"), "w") as fh:
        json.dump(expected, fh, indent=1, sort_keys=True)
        fh.write("\n")
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(HERE) for f in fs)
    print(f"fixtures written: {total:,} bytes")


if __name__ == "__main__":
    main()
