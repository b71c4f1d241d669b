"""What the code expects: the ModelSpec that ``frameworks/`` builds from a live torch or Keras model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ckptdoctor.diagnostics import Diagnostic


@dataclass
class StateEntry:
    """One entry of the state the model saves and loads (a torch state_dict key or a Keras variable).

    ``kind`` is parameter, buffer or variable. ``persistent`` is False for torch buffers registered with
    ``persistent=False`` (they are not saved). ``owner`` is the module/layer path, ``owner_class`` its class.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    kind: str = "parameter"
    persistent: bool = True
    owner: str = ""
    owner_class: str = ""
    trainable: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "kind": self.kind,
                "persistent": self.persistent, "owner": self.owner, "owner_class": self.owner_class}


@dataclass
class LayerSpec:
    """A module or layer: its path, class, and the hyperparameters that explain its shapes."""

    path: str
    class_name: str
    module: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    weights: list[str] = field(default_factory=list)


@dataclass
class ModelSpec:
    framework: str  # "pytorch" or "keras"
    class_name: str
    module: str = ""
    state: list[StateEntry] = field(default_factory=list)
    layers: list[LayerSpec] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def entry(self, name: str) -> StateEntry:
        for e in self.state:
            if e.name == name:
                return e
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.state]
