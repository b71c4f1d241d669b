"""The article's Example 1 (Keras), as importable code, for Keras 3.

``create_model_v1`` is saved (``.h5``, ``.keras``, ``.weights.h5``); ``create_model_v2`` is the changed
code (LSTM 128 -> 64). The variants with one layer fewer and one extra layer cover the cases where Keras
errors and where it silently loads only part of the file.

The article loads with ``keras.models.load_model("chatbot_model_v1.h5")``: that rebuilds the v1 model from
the file and never uses ``create_model_v2``. The mismatch only appears with ``model_v2.load_weights(...)``.

    python examples/article/keras_chatbot.py out_dir
    ckptdoctor check out_dir/chatbot_model_v1.keras --model examples/article/keras_chatbot.py:create_model_v2
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")  # keras defaults to TensorFlow, which may be absent

import keras
from keras import layers

SEQ_LEN = 20


def _built(model: keras.Model) -> keras.Model:
    model.build((None, SEQ_LEN))
    return model


def create_model_v1() -> keras.Model:
    return _built(keras.Sequential([
        layers.Embedding(input_dim=1000, output_dim=64),
        layers.LSTM(units=128),
        layers.Dense(units=2, activation="softmax"),
    ]))


def create_model_v2() -> keras.Model:
    return _built(keras.Sequential([
        layers.Embedding(input_dim=1000, output_dim=64),
        layers.LSTM(units=64),  # Reduced LSTM units
        layers.Dense(units=2, activation="softmax"),
    ]))


def create_model_one_layer_fewer() -> keras.Model:
    """Embedding + LSTM only: loads a v1 ``.weights.h5`` with no message and drops the saved Dense."""
    return _built(keras.Sequential([
        layers.Embedding(input_dim=1000, output_dim=64),
        layers.LSTM(units=128),
    ]))


def create_model_extra_layer() -> keras.Model:
    """An extra Dense(16) before the head: the new layer takes the path ``dense`` and the old head's weights."""
    return _built(keras.Sequential([
        layers.Embedding(input_dim=1000, output_dim=64),
        layers.LSTM(units=128),
        layers.Dense(units=16, activation="relu"),
        layers.Dense(units=2, activation="softmax"),
    ]))


def create_model_unbuilt() -> keras.Model:
    """The article's v2 exactly as written: never called, so it has no weights until built."""
    return keras.Sequential([
        layers.Embedding(input_dim=1000, output_dim=64),
        layers.LSTM(units=64),
        layers.Dense(units=2, activation="softmax"),
    ])


def save_article_files(folder: str) -> dict[str, str]:
    """Save v1 the three ways Keras 3 can: legacy ``.h5`` (the article), ``.keras`` and ``.weights.h5``."""
    keras.utils.set_random_seed(0)
    model = create_model_v1()
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    paths = {
        "h5": os.path.join(folder, "chatbot_model_v1.h5"),
        "keras": os.path.join(folder, "chatbot_model_v1.keras"),
        "weights": os.path.join(folder, "chatbot_model_v1.weights.h5"),
    }
    model.save(paths["h5"])
    model.save(paths["keras"])
    model.save_weights(paths["weights"])
    return paths


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    for p in save_article_files(out).values():
        print(p)
