"""The exact ``.weights.h5`` layout ``model.save_weights`` would write for a live Keras 3 model.

Keras' own saving walk (``saving_lib._save_state``) runs against a store that records instead of
writing: every ``make(path, metadata)`` (one ``<path>/vars`` group, with the attribute ``name`` when the
saveable has a name; Keras creates it even when it holds no variable) and every variable written into
it. ``fix`` uses this to write a file group by group as Keras would, and takes the values of the
model's own optimizer variables (never the file's) from here. keras is imported here only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class KerasLayout:
    groups: list[tuple[str, str | None]] = field(default_factory=list)  # ("layers/dense/vars", "dense") in order
    variables: list[tuple[str, tuple[int, ...], str]] = field(default_factory=list)  # (dataset path, shape, dtype)
    fresh: dict[str, Any] = field(default_factory=dict)  # optimizer dataset path -> the model's own value


def save_layout(model: Any) -> KerasLayout:
    import numpy as np
    from keras.src.saving import saving_lib

    layout = KerasLayout()

    class RecordingStore(saving_lib.H5IOStore):  # type: ignore[misc]
        """Passes Keras' isinstance check; records groups and variables instead of writing HDF5."""

        def __init__(self) -> None:  # no file
            self.mode = "w"
            self.path = ""

        def make(self, path: str, metadata: Any = None) -> RecordingStore:
            self.path = path
            if metadata:  # H5IOStore creates the group at once only when there is metadata
                layout.groups.append((_vars(path), str(metadata.get("name")) if "name" in metadata else None))
            return self

        def __setitem__(self, key: str, value: Any) -> None:
            group = _vars(self.path)
            if not any(g == group for g, _ in layout.groups):
                layout.groups.append((group, None))
            name = f"{group}/{key}"
            dtype = str(getattr(getattr(value, "dtype", ""), "name", getattr(value, "dtype", ""))).removeprefix("torch.")
            layout.variables.append((name, tuple(int(d) for d in getattr(value, "shape", ())), dtype))
            if name.startswith("optimizer/"):
                from keras import ops

                layout.fresh[name] = np.asarray(ops.convert_to_numpy(value))

        def keys(self) -> list[str]:
            return []

        def __bool__(self) -> bool:
            return True

        def close(self) -> None:
            return None

    saving_lib._save_state(model, weights_store=RecordingStore(), assets_store=None, inner_path="",
                           visited_saveables=set())
    return layout


def _vars(path: str) -> str:
    return f"{path}/vars" if path else "vars"
