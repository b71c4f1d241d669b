"""The article's Example 3 (dtypes), as a user would run it, plus what really changes dtypes silently.

`save` writes the article's explicit-float32 Keras model, a mixed_float16 variant, a PyTorch state_dict
in float16, and a model whose state was created under torch.no_grad() next to one that keeps a tensor as
a plain attribute. `load` reloads each and prints what the frameworks do.
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
import torch
import torch.nn as nn
from keras import layers


def create_model(dtype="float32"):
    return keras.Sequential([
        keras.Input(shape=(20,), dtype="int32"),
        layers.Embedding(input_dim=1000, output_dim=64, dtype=dtype),  # Explicitly set
        layers.LSTM(units=128, dtype=dtype),
        layers.Dense(units=2, activation="softmax", dtype=dtype),
    ])


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 2)
        with torch.no_grad():  # the article's suspect: state created under no_grad is still saved
            self.scale = nn.Parameter(torch.ones(2))
        self.temperature = torch.tensor(1.0)  # a plain attribute: NOT saved


if __name__ == "__main__":
    x = np.random.default_rng(0).integers(0, 1000, (2, 20)).astype("int32")
    if sys.argv[1:] == ["save"]:
        model = create_model("float32")
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        model.predict(x, verbose=0)
        model.save("chatbot_model_dtype.h5")
        keras.config.set_dtype_policy("mixed_float16")
        mixed = create_model("mixed_float16")
        mixed.predict(x, verbose=0)
        mixed.save("chatbot_model_mixed.keras")
        keras.config.set_dtype_policy("float32")
        net = SmallNet()
        net.temperature = torch.tensor(0.5)  # "trained" value, kept only in the plain attribute
        torch.save(net.state_dict(), "small_net.pth")
        torch.save({k: v.half() for k, v in net.state_dict().items()}, "small_net_fp16.pth")
        print("  saved chatbot_model_dtype.h5, chatbot_model_mixed.keras, small_net.pth, small_net_fp16.pth")
    else:
        new_model = keras.models.load_model("chatbot_model_dtype.h5")
        print(f"  load_model('chatbot_model_dtype.h5'): OK, variables {sorted({v.dtype for v in new_model.weights})}")
        mixed = keras.models.load_model("chatbot_model_mixed.keras")
        print(f"  load_model('chatbot_model_mixed.keras'): OK, policy {mixed.layers[0].dtype_policy.name}, "
              f"variables {sorted({v.dtype for v in mixed.weights})}, output {mixed.predict(x, verbose=0).dtype}")
        fresh = SmallNet()
        fresh.load_state_dict(torch.load("small_net_fp16.pth"))
        print(f"  SmallNet().load_state_dict(fp16 file): OK, no message; parameters stay {fresh.fc.weight.dtype}")
        fresh.load_state_dict(torch.load("small_net.pth"))
        print(f"  after reload, 'scale' (made under no_grad) is in the file: {'scale' in torch.load('small_net.pth')}; "
              f"'temperature' is {float(fresh.temperature)} (trained value was 0.5: lost, no message)")
