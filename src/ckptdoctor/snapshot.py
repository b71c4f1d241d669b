"""What a file holds: the common data model every reader produces (DESIGN.md, "Snapshot").

Readers fill these dataclasses from headers only. Tensor values are read lazily through
``TensorInfo.read()`` and only when asked, so inspecting metadata never touches tensor bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ckptdoctor.diagnostics import Diagnostic

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see ckptdoctor/__init__.py
if TYPE_CHECKING:
    from typing import Any

    import numpy as np


def numel(shape: tuple[int, ...]) -> int:
    """The number of elements of a tensor of this shape (1 for a scalar, 0 when any dimension is 0)."""
    n = 1
    for d in shape:
        n *= d
    return n


@dataclass
class TensorInfo:
    """One tensor as stored. ``storage``/``offset``/``strides`` make views and sharing visible.

    ``offset`` and ``strides`` are in elements (torch convention). ``storage_nbytes`` is the size of
    the whole underlying storage, which for a view can be far larger than ``nbytes``.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    storage: str | None = None
    offset: int = 0
    strides: tuple[int, ...] | None = None
    storage_nbytes: int | None = None
    location: str | None = None  # torch device tag ("cpu", "cuda:0", ...)
    requires_grad: bool | None = None
    is_parameter: bool | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    loader: Callable[[], np.ndarray] | None = field(default=None, repr=False, compare=False)

    @property
    def numel(self) -> int:
        return numel(self.shape)

    @property
    def is_contiguous(self) -> bool:
        if self.strides is None:
            return True
        expected = 1
        for dim, stride in zip(reversed(self.shape), reversed(self.strides), strict=True):
            if dim != 1 and stride != expected:
                return False
            expected *= dim
        return True

    def read(self) -> np.ndarray:
        """The tensor's values as a numpy array (bfloat16/float8 as ml_dtypes)."""
        if self.loader is None:
            raise ValueError(f"values of {self.name!r} cannot be read from this file")
        return self.loader()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "nbytes": self.nbytes,
        }
        if self.storage is not None:
            out["storage"] = self.storage
            out["offset"] = self.offset
        if self.strides is not None:
            out["strides"] = list(self.strides)
        if self.storage_nbytes is not None:
            out["storage_nbytes"] = self.storage_nbytes
        if self.location is not None:
            out["location"] = self.location
        if self.attrs:
            out["attrs"] = self.attrs
        return out


@dataclass(frozen=True)
class GlobalRef:
    """A ``module.name`` the file refers to (pickle GLOBAL/STACK_GLOBAL), kept inert and never imported."""

    module: str
    name: str

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass
class ClassRef:
    """A class the file needs to rebuild an object (Keras ``class_name``/``module``/``registered_name``,
    or a pickled class such as ``__main__.ChatbotModel``)."""

    name: str
    module: str | None
    registered_name: str | None = None
    role: str = ""  # "keras-layer", "keras-model", "keras-object", "pickled-class", ...
    path: str = ""  # where in the config/pickle it was found
    builtin: bool = False  # a class the framework itself provides

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "registered_name": self.registered_name,
            "role": self.role,
            "path": self.path,
            "builtin": self.builtin,
        }


@dataclass
class Snapshot:
    """Everything ckptdoctor knows about one model file, read without executing it.

    ``format`` is one of: torch-zip, torch-legacy, torchscript, pickle, safetensors, safetensors-sharded,
    keras-v3 (.keras), keras-weights (.weights.h5), keras-h5 (legacy full model or weights HDF5), npy, npz,
    tf-checkpoint (a TF tensor bundle ``.index`` + ``.data-*``), tf-savedmodel (a SavedModel folder).
    ``framework`` is one of: pytorch, keras, safetensors, numpy, python, tensorflow.
    """

    path: str
    format: str
    framework: str
    framework_version: str | None = None
    tensors: list[TensorInfo] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] | None = None  # Keras model config tree
    training_config: dict[str, Any] | None = None
    classes: list[ClassRef] = field(default_factory=list)
    globals: list[GlobalRef] = field(default_factory=list)
    structure: Any = None  # nesting of a pickled object, tensors replaced by "<tensor name>"
    layers: list[dict[str, Any]] = field(default_factory=list)  # ordered layers (Keras), name/class/weights
    diagnostics: list[Diagnostic] = field(default_factory=list)
    file_size: int | None = None

    def __iter__(self) -> Iterator[TensorInfo]:
        return iter(self.tensors)

    def tensor(self, name: str) -> TensorInfo:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tensors]

    @property
    def total_nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    @property
    def parameter_count(self) -> int:
        return sum(t.numel for t in self.tensors)

    def bytes_per_dtype(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tensors:
            out[t.dtype] = out.get(t.dtype, 0) + t.nbytes
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "framework": self.framework,
            "framework_version": self.framework_version,
            "file_size": self.file_size,
            "tensor_count": len(self.tensors),
            "parameter_count": self.parameter_count,
            "bytes_per_dtype": self.bytes_per_dtype(),
            "tensors": [t.to_json() for t in self.tensors],
            "classes": [c.to_json() for c in self.classes],
            "globals": sorted({g.qualname for g in self.globals}),
            "metadata": self.metadata,
            "layers": self.layers,
        }
