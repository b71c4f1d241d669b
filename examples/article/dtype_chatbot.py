"""The article's Example 3 (explicit float32 dtypes, saved to .h5) and a mixed_float16 variant.

Measured with Keras 3: the float32 model round-trips exactly (only the legacy-.h5 advice remains).
With `mixed_float16` the file stores float32 variables and the policy; `load_model` restores the
policy, but a float32 model built from code and given `load_weights` computes in float32, and its
outputs differ slightly from the trained model's. Nothing warns.

    KERAS_BACKEND=torch python examples/article/dtype_chatbot.py
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
from keras import layers


def create_model(vocab_size: int = 1000, embedding_dim: int = 64, units: int = 128, seq_len: int = 20):
    """Example 3 as in the article, with an input shape so the model is built."""
    return keras.Sequential([
        keras.Input((seq_len,), dtype="int32"),
        layers.Embedding(input_dim=vocab_size, output_dim=embedding_dim, dtype="float32"),
        layers.LSTM(units=units, dtype="float32"),
        layers.Dense(units=2, activation="softmax", dtype="float32"),
    ])


def create_mixed_model(vocab_size: int = 1000, embedding_dim: int = 64, units: int = 128, seq_len: int = 20):
    """The same model under the mixed_float16 policy (restored afterwards)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        return keras.Sequential([
            keras.Input((seq_len,), dtype="int32"),
            layers.Embedding(input_dim=vocab_size, output_dim=embedding_dim),
            layers.LSTM(units=units),
            layers.Dense(units=2, activation="softmax"),
        ])
    finally:
        keras.config.set_dtype_policy(previous)


def main() -> int:
    from ckptdoctor.roundtripping import roundtrip

    float32 = roundtrip(create_model(), save_as="h5")
    print(float32.render())
    mixed = roundtrip(create_mixed_model(), save_as="weights", rebuild=create_model)
    print(mixed.render())
    return 0 if float32.ok else 1


def create_small_model():
    """A small float32 twin of the test sizes, for `--rebuild dtype_chatbot:create_small_model`."""
    return create_model(100, 8, 16, 10)


if __name__ == "__main__":
    raise SystemExit(main())
