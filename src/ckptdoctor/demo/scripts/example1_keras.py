"""The article's Example 1 (architecture discrepancy), as a user would run it with Keras 3.

`python example1_keras.py save` trains nothing and saves create_model_v1() (LSTM 128) in the three
Keras formats. `python example1_keras.py load` runs the article's loading code and then the loads a
user really needs, printing what Keras itself does.
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
from keras import layers


def create_model_v1():
    model = keras.Sequential([
        keras.Input(shape=(20,), dtype="int32"),
        layers.Embedding(input_dim=1000, output_dim=64),
        layers.LSTM(units=128),
        layers.Dense(units=2, activation="softmax"),
    ])
    return model


def create_model_v2():
    model = keras.Sequential([
        keras.Input(shape=(20,), dtype="int32"),
        layers.Embedding(input_dim=1000, output_dim=64),
        layers.LSTM(units=64),  # Reduced LSTM units
        layers.Dense(units=2, activation="softmax"),
    ])
    return model


def create_model_v3_no_dense():
    """One layer fewer: loads .weights.h5 without a word, ignoring the saved Dense weights."""
    return keras.Sequential([
        keras.Input(shape=(20,), dtype="int32"),
        layers.Embedding(input_dim=1000, output_dim=64),
        layers.LSTM(units=128),
    ])


def attempt(label, func):
    try:
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = func()
        warned = [str(w.message).splitlines()[0][:160] for w in caught if "copy keyword" not in str(w.message)]
        print(f"  {label}: OK" + (f", warned: {warned}" if warned else ", no message"))
        return result
    except Exception as exc:  # the article's own pattern: print what the framework raised
        first = str(exc).strip().splitlines()[0][:200]
        print(f"  {label}: {type(exc).__name__}: {first}")
        return None


if __name__ == "__main__":
    if sys.argv[1:] == ["save"]:
        model_v1 = create_model_v1()
        model_v1.compile(optimizer="adam", loss="categorical_crossentropy")
        model_v1.predict(np.zeros((1, 20), dtype="int32"), verbose=0)
        model_v1.save("chatbot_model_v1.h5")
        model_v1.save("chatbot_model_v1.keras")
        model_v1.save_weights("chatbot_model_v1.weights.h5")
        print("  saved chatbot_model_v1.h5, chatbot_model_v1.keras, chatbot_model_v1.weights.h5 (LSTM 128)")
    else:
        model_v2 = create_model_v2()
        loaded = attempt("keras.models.load_model('chatbot_model_v1.h5')  [the article's line]",
                         lambda: keras.models.load_model("chatbot_model_v1.h5"))
        if loaded is not None:
            lstm = next(lyr for lyr in loaded.layers if isinstance(lyr, layers.LSTM))
            print(f"    -> the loaded model has LSTM(units={lstm.units}): it was rebuilt from the file's own "
                  "config; create_model_v2 was never consulted")
        for path in ("chatbot_model_v1.weights.h5", "chatbot_model_v1.keras", "chatbot_model_v1.h5"):
            attempt(f"create_model_v2().load_weights('{path}')", lambda p=path: create_model_v2().load_weights(p))
        attempt("create_model_v3_no_dense().load_weights('chatbot_model_v1.weights.h5')",
                lambda: create_model_v3_no_dense().load_weights("chatbot_model_v1.weights.h5"))
