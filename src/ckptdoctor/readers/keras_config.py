"""Keras config trees as data: referenced classes, the ordered layer list, dtype policies, and the names
of each layer's variables (Keras 3 stores them by position: ``vars/0``, ``vars/1`` ...).

Pure Python: nothing here imports keras. Keras 2 configs have no ``module`` key, so "is this class
built into Keras?" is answered from the list of class names Keras 2 and tf.keras provided.
"""

from __future__ import annotations

import re
from typing import Any

from ckptdoctor.readers.keras_names import KERAS3_LAYERS, KERAS3_OPS
from ckptdoctor.snapshot import ClassRef

# Variables of a layer in the order Keras creates them, with the config flag that must be true for
# the optional ones. Keras writes them as vars/0, vars/1, ... in exactly this order.
VARIABLES: dict[str, list[tuple[str, str | None]]] = {
    "Dense": [("kernel", None), ("bias", "use_bias")],
    "EinsumDense": [("kernel", None), ("bias", "bias_axes")],
    "Embedding": [("embeddings", None)],
    "LSTMCell": [("kernel", None), ("recurrent_kernel", None), ("bias", "use_bias")],
    "GRUCell": [("kernel", None), ("recurrent_kernel", None), ("bias", "use_bias")],
    "SimpleRNNCell": [("kernel", None), ("recurrent_kernel", None), ("bias", "use_bias")],
    "Conv1D": [("kernel", None), ("bias", "use_bias")],
    "Conv2D": [("kernel", None), ("bias", "use_bias")],
    "Conv3D": [("kernel", None), ("bias", "use_bias")],
    "Conv1DTranspose": [("kernel", None), ("bias", "use_bias")],
    "Conv2DTranspose": [("kernel", None), ("bias", "use_bias")],
    "Conv3DTranspose": [("kernel", None), ("bias", "use_bias")],
    "DepthwiseConv1D": [("kernel", None), ("bias", "use_bias")],
    "DepthwiseConv2D": [("kernel", None), ("bias", "use_bias")],
    "SeparableConv1D": [("depthwise_kernel", None), ("pointwise_kernel", None), ("bias", "use_bias")],
    "SeparableConv2D": [("depthwise_kernel", None), ("pointwise_kernel", None), ("bias", "use_bias")],
    "BatchNormalization": [("gamma", "scale"), ("beta", "center"), ("moving_mean", None),
                           ("moving_variance", None)],
    "LayerNormalization": [("gamma", "scale"), ("beta", "center")],
    "GroupNormalization": [("gamma", "scale"), ("beta", "center")],
    "RMSNormalization": [("scale", None)],
    "PReLU": [("alpha", None)],
    "Normalization": [("mean", None), ("variance", None), ("count", None)],
}
# sub-objects of a layer that own variables: (class, h5 key) -> class of the sub-object, or
# "config:<key>" when the sub-object's own config is nested in the layer's config
SUBOBJECTS: dict[tuple[str, str], str] = {
    ("LSTM", "cell"): "LSTMCell",
    ("GRU", "cell"): "GRUCell",
    ("SimpleRNN", "cell"): "SimpleRNNCell",
    ("RNN", "cell"): "config:cell",
    ("Bidirectional", "forward_layer"): "config:layer",
    ("Bidirectional", "backward_layer"): "config:backward_layer|layer",
    ("TimeDistributed", "layer"): "config:layer",
    ("MultiHeadAttention", "query_dense"): "EinsumDense",
    ("MultiHeadAttention", "key_dense"): "EinsumDense",
    ("MultiHeadAttention", "value_dense"): "EinsumDense",
    ("MultiHeadAttention", "output_dense"): "EinsumDense",
}
# hyperparameters worth showing per layer (and comparing with the code's model)
HYPERPARAMETERS = (
    "units", "input_dim", "output_dim", "activation", "recurrent_activation", "use_bias", "filters",
    "kernel_size", "strides", "padding", "pool_size", "rate", "return_sequences", "return_state",
    "num_heads", "key_dim", "axis", "epsilon", "mask_zero", "merge_mode", "target_shape", "trainable",
    "batch_shape", "batch_input_shape", "input_shape", "center", "scale", "momentum", "dropout",
    "recurrent_dropout", "implementation", "reset_after", "data_format",
)
# class names Keras 2 / tf.keras 2.x provided (their configs carry no ``module``)
_KERAS2_NAMES = """
Sequential Model Functional InputLayer Dense Dropout Activation Flatten Reshape Permute RepeatVector Lambda
ActivityRegularization Masking SpatialDropout1D SpatialDropout2D SpatialDropout3D Conv1D Conv2D Conv3D
Convolution1D Convolution2D Convolution3D Conv1DTranspose Conv2DTranspose Conv3DTranspose Deconvolution2D
SeparableConv1D SeparableConv2D DepthwiseConv1D DepthwiseConv2D Cropping1D Cropping2D Cropping3D
UpSampling1D UpSampling2D UpSampling3D ZeroPadding1D ZeroPadding2D ZeroPadding3D MaxPooling1D MaxPooling2D
MaxPooling3D MaxPool1D MaxPool2D MaxPool3D AveragePooling1D AveragePooling2D AveragePooling3D AvgPool1D
AvgPool2D GlobalMaxPooling1D GlobalMaxPooling2D GlobalMaxPooling3D GlobalAveragePooling1D
GlobalAveragePooling2D GlobalAveragePooling3D GlobalMaxPool1D GlobalMaxPool2D GlobalAvgPool1D GlobalAvgPool2D
LocallyConnected1D LocallyConnected2D SimpleRNN GRU LSTM CuDNNGRU CuDNNLSTM ConvLSTM1D ConvLSTM2D ConvLSTM3D
SimpleRNNCell GRUCell LSTMCell StackedRNNCells RNN Bidirectional TimeDistributed Embedding Add Subtract
Multiply Average Maximum Minimum Concatenate Dot LeakyReLU PReLU ELU ThresholdedReLU Softmax ReLU
BatchNormalization LayerNormalization GroupNormalization UnitNormalization GaussianNoise GaussianDropout
AlphaDropout Attention AdditiveAttention MultiHeadAttention EinsumDense Normalization TextVectorization
StringLookup IntegerLookup CategoryEncoding Rescaling Resizing CenterCrop Discretization Hashing
RandomFlip RandomRotation RandomZoom RandomCrop RandomContrast RandomTranslation Wrapper
Zeros Ones Constant RandomNormal RandomUniform TruncatedNormal VarianceScaling Orthogonal Identity
GlorotUniform GlorotNormal HeNormal HeUniform LecunNormal LecunUniform L1L2 L1 L2 OrthogonalRegularizer
MaxNorm NonNeg UnitNorm MinMaxNorm RadialConstraint SGD RMSprop Adagrad Adadelta Adam Adamax Nadam AdamW
Ftrl TFOptimizer LossScaleOptimizer Policy DTypePolicy PolynomialDecay ExponentialDecay PiecewiseConstantDecay
InverseTimeDecay CosineDecay CosineDecayRestarts
"""
KERAS2_BUILTINS = frozenset(_KERAS2_NAMES.split())
# pseudo classes the serializer uses for values, not classes a loader must find
_VALUE_MARKERS = {"__keras_tensor__", "__tensor__", "__numpy__", "__bytes__", "__typespec__", "__ellipsis__",
                  "__slice__", "__tuple__", "__float__", "__int__", "__str__"}
_LAYER_KEYS = {"layer", "backward_layer", "cell", "forward_layer"}


def to_snake_case(name: str) -> str:
    """keras.src.utils.naming.to_snake_case: the key Keras 3 gives a layer in ``.weights.h5``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


_SNAKE_TO_CLASS = {to_snake_case(c): c for c in VARIABLES} | {
    "lstm": "LSTM", "gru": "GRU", "simple_rnn": "SimpleRNN", "bidirectional": "Bidirectional",
    "multi_head_attention": "MultiHeadAttention", "sequential": "Sequential", "functional": "Functional",
    "forward_gru": "GRU", "backward_gru": "GRU", "forward_lstm": "LSTM", "backward_lstm": "LSTM",
    "forward_simple_rnn": "SimpleRNN", "backward_simple_rnn": "SimpleRNN"}


def class_from_key(key: str) -> str | None:
    """Guess a layer's class from its ``.weights.h5`` key (``dense_1`` -> Dense) when there is no config."""
    return _SNAKE_TO_CLASS.get(re.sub(r"_\d+$", "", key))


def is_builtin(class_name: str, module: Any) -> bool:
    if isinstance(module, str):
        return module == "keras" or module.startswith("keras.")
    if class_name.startswith("__"):
        return False
    return ">" not in class_name and (class_name in KERAS2_BUILTINS or class_name in KERAS3_LAYERS)


def is_keras_op(class_name: str, module: Any) -> bool:
    """A keras.ops operation recorded as a node of a functional model (``NotEqual``, ``Tanh``), in a config
    without modules: the legacy .h5 loader cannot rebuild it (it looks names up among layers)."""
    if isinstance(module, str):
        return module.startswith("keras.src.ops")
    return class_name in KERAS3_OPS and class_name not in KERAS3_LAYERS and class_name not in KERAS2_BUILTINS


def keras_op_nodes(config: Any, path: str = "model_config") -> list[tuple[str, str, bool]]:
    """(path, class name, also a layer name) of every keras.ops node in a config without modules.

    An op node's config is only ``{"name": ...}`` (plus the op's arguments); a layer's always has
    ``trainable``, so ``Add`` from ``keras.ops.add(x, 1.0)`` is told apart from an ``Add`` layer."""
    found: list[tuple[str, str, bool]] = []
    stack: list[tuple[Any, str]] = [(config, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            name, cfg = node.get("class_name"), node.get("config")
            if (isinstance(name, str) and name in KERAS3_OPS and isinstance(cfg, dict) and "trainable" not in cfg
                    and not isinstance(node.get("module"), str)):
                found.append((f"{where}[{cfg.get('name', name)}]", name,
                              name in KERAS3_LAYERS or name in KERAS2_BUILTINS))
            stack.extend((v, f"{where}.{k}") for k, v in node.items() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend((v, where) for v in node if isinstance(v, (dict, list)))
    return sorted(found)


def model_layers(node: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The layer configs of a Sequential/Functional node (Keras 2.0/2.1 Sequential stored a bare list)."""
    cfg = node.get("config")
    if isinstance(cfg, list):
        return [x for x in cfg if isinstance(x, dict)]
    if isinstance(cfg, dict) and isinstance(cfg.get("layers"), list):
        return [x for x in cfg["layers"] if isinstance(x, dict)]
    return None


def layer_name(node: dict[str, Any]) -> str | None:
    cfg = node.get("config")
    if isinstance(cfg, dict) and isinstance(cfg.get("name"), str):
        return cfg["name"]
    return node.get("name") if isinstance(node.get("name"), str) else None


def dtype_name(value: Any) -> str | None:
    """The dtype policy name of a layer: a string (Keras 2, "mixed_float16"), or a DTypePolicy/Policy dict."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        cfg = value.get("config")
        if isinstance(cfg, dict) and isinstance(cfg.get("name"), str):
            return cfg["name"]
    return None


def class_refs(tree: Any, root_path: str = "config") -> list[ClassRef]:
    """Every class the tree names (layers, initializers, optimizers, losses, dtype policies ...)."""
    out: list[ClassRef] = []
    _collect(tree, root_path, "keras-model", out)
    return out


def _collect(node: Any, path: str, role: str, out: list[ClassRef]) -> None:
    if isinstance(node, list):
        for i, item in enumerate(node):
            _collect(item, f"{path}[{i}]", role if role == "keras-layer" else "keras-object", out)
        return
    if not isinstance(node, dict):
        return
    cn = node.get("class_name")
    if isinstance(cn, str) and cn not in _VALUE_MARKERS:
        if model_layers(node) is not None:
            role = "keras-model"
        module = node.get("module") if isinstance(node.get("module"), str) else None
        reg = node.get("registered_name") if isinstance(node.get("registered_name"), str) else None
        out.append(ClassRef(name=cn, module=module, registered_name=reg, role=role, path=path,
                            builtin=is_builtin(cn, node.get("module"))))
    for key, value in node.items():
        if key in ("class_name", "module", "registered_name"):
            continue
        if key in ("layers", "config") and isinstance(value, list):  # "config": Keras 2.0 Sequential
            for i, item in enumerate(value):
                label = layer_name(item) if isinstance(item, dict) else None
                _collect(item, f"{path}.layers[{label or i}]", "keras-layer", out)
        elif key in _LAYER_KEYS or key == "cells":
            _collect(value, f"{path}.{key}", "keras-layer", out)
        else:
            _collect(value, f"{path}.{key}", "keras-object", out)


def layer_list(config: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The model's layers in config order (nested models flattened, with ``parent``)."""
    out: list[dict[str, Any]] = []
    if isinstance(config, dict):
        _layers(config, None, "config", out)
    return out


def _layers(model: dict[str, Any], parent: str | None, path: str, out: list[dict[str, Any]]) -> None:
    for i, node in enumerate(model_layers(model) or []):
        cfg = node.get("config") if isinstance(node.get("config"), dict) else {}
        name = layer_name(node) or f"layer_{i}"
        entry: dict[str, Any] = {
            "name": name,
            "class_name": node.get("class_name"),
            "module": node.get("module"),
            "registered_name": node.get("registered_name"),
            "builtin": is_builtin(str(node.get("class_name")), node.get("module")),
            "path": f"{path}.layers[{name}]",
            "hyperparameters": layer_hyperparameters(node),
            "weights": [],
        }
        if parent is not None:
            entry["parent"] = parent
        out.append(entry)
        if model_layers(node) is not None:
            _layers(node, name, entry["path"], out)
        elif isinstance(cfg.get("layer"), dict) and model_layers(cfg["layer"]) is not None:
            _layers(cfg["layer"], name, entry["path"] + ".layer", out)


def layer_hyperparameters(node: dict[str, Any]) -> dict[str, Any]:
    cfg = node.get("config") if isinstance(node.get("config"), dict) else {}
    hp: dict[str, Any] = {}
    for key in HYPERPARAMETERS:
        if key in cfg:
            value = cfg[key]
            if isinstance(value, dict):  # a serialized activation/function: keep its name
                value = value.get("config") if value.get("class_name") == "function" else value.get("class_name")
            hp[key] = value
    policy = dtype_name(cfg.get("dtype"))
    if policy is not None:
        hp["dtype"] = policy
    for key in ("layer", "cell"):  # wrappers: the wrapped layer's class
        if isinstance(cfg.get(key), dict) and isinstance(cfg[key].get("class_name"), str):
            hp[key] = cfg[key]["class_name"]
    return hp


def variable_names(class_name: str | None, layer_config: dict[str, Any] | None, count: int) -> list[str] | None:
    """Names of a layer's ``count`` positional variables, or None when they cannot be told apart."""
    spec = VARIABLES.get(class_name or "")
    if spec is None:
        return None
    cfg = layer_config or {}
    if layer_config:
        names = [n for n, flag in spec if flag is None or _truthy(cfg.get(flag, True))]
        if len(names) == count:
            return names
    if len(spec) == count:
        return [n for n, _ in spec]
    required = [n for n, flag in spec if flag is None]
    return required if len(required) == count else None


def _truthy(value: Any) -> bool:
    return bool(value) if not isinstance(value, str) else value != ""


def subobject_config(class_name: str | None, layer_node: dict[str, Any] | None, key: str
                     ) -> dict[str, Any] | None:
    """The (class_name, config) node of a layer's sub-object, e.g. the LSTMCell of an LSTM."""
    rule = SUBOBJECTS.get((class_name or "", key))
    if rule is None:
        return None
    cfg = (layer_node or {}).get("config")
    cfg = cfg if isinstance(cfg, dict) else {}
    if rule.startswith("config:"):
        for k in rule[len("config:"):].split("|"):
            if isinstance(cfg.get(k), dict):
                return cfg[k]
        return None
    # a cell shares its layer's settings (units, use_bias, ...)
    return {"class_name": rule, "config": cfg}
