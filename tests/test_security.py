"""Files that would run code if unpickled: inspect must report them and must not run them."""

from __future__ import annotations

import builtins
import json
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from ckptdoctor.inspection import inspect
from ckptdoctor.readers import read
from ckptdoctor.rules import security

torch = pytest.importorskip("torch")

CLI = [sys.executable, "-m", "ckptdoctor.cli"]


class Shell:
    """Unpickling this runs a shell command."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


class OpenFile:
    """Unpickling this creates a file through builtins.open."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (builtins.open, (str(self.target), "w"))


class Config:
    def __init__(self) -> None:
        self.lr = 0.1


@pytest.fixture()
def payloads(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    """name -> (malicious file, the file it would create if unpickled)."""
    out = {}
    for name, cls in (("shell", Shell), ("open", OpenFile)):
        target = tmp_path / f"pwned_{name}"
        pkl = tmp_path / f"{name}.pkl"
        pkl.write_bytes(pickle.dumps({"weights": [1.0, 2.0], "x": cls(target)}, protocol=2))
        out[f"{name}-pickle"] = (pkl, target)
        target_pt = tmp_path / f"pwned_{name}_pt"
        pt = tmp_path / f"{name}.pt"
        torch.save({"w": torch.ones(2), "x": cls(target_pt)}, pt)
        out[f"{name}-torch"] = (pt, target_pt)
    return out


@pytest.mark.parametrize("name", ["shell-pickle", "open-pickle", "shell-torch", "open-torch"])
def test_inspect_reports_and_never_executes(payloads: dict[str, tuple[Path, Path]], name: str) -> None:
    path, target = payloads[name]
    proc = subprocess.run([*CLI, "inspect", str(path), "--format", "json"], capture_output=True, text=True,
                          check=False)
    assert not target.exists(), "inspect executed the payload"
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    s101 = [d for d in report["diagnostics"] if d["code"] == "S101"]
    assert s101, report["diagnostics"]
    expected_name = "system" if name.startswith("shell") else "open"
    assert any(d["subject"].endswith("." + expected_name) for d in s101)
    assert all(d["severity"] == "error" for d in s101)
    # the real unpickler would indeed have run it: proves the fixture is live
    if name.endswith("pickle"):
        with open(path, "rb") as fh:
            obj = pickle.load(fh)
        if hasattr(obj["x"], "close"):
            obj["x"].close()
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.load(path, weights_only=False)
    assert target.exists()


def test_weights_only_refusal_is_predicted(tmp_path: Path) -> None:
    import numpy as np

    path = tmp_path / "ckpt.pt"
    torch.save({"model": {"w": torch.ones(2)}, "cfg": Config(), "arr": np.arange(3), "best": np.float64(0.5)}, path)
    with pytest.raises(pickle.UnpicklingError) as info:
        torch.load(path, weights_only=True)
    snap = inspect(path)[0]
    s103 = [d for d in snap.diagnostics if d.code == "S103"]
    assert len(s103) == 1
    first_blocked = str(info.value).split("GLOBAL ")[1].split(" ")[0]
    assert first_blocked in s103[0].details["globals"]
    assert "add_safe_globals" in s103[0].fix
    c201 = [d for d in snap.diagnostics if d.code == "C201"]
    assert [d.subject for d in c201] == [f"{__name__}.Config"]
    assert not [d for d in snap.diagnostics if d.code == "S101"]


def test_state_dict_is_clean(tmp_path: Path) -> None:
    path = tmp_path / "sd.pt"
    torch.save(torch.nn.Linear(2, 3).state_dict(), path)
    torch.load(path, weights_only=True)  # torch agrees it is safe
    snap = inspect(path)[0]
    assert not [d for d in snap.diagnostics if d.code.startswith(("S", "C2"))]


def test_protocol4_torch_save_predicted(tmp_path: Path) -> None:
    path = tmp_path / "p4.pt"
    torch.save({"w": torch.ones(2)}, path, pickle_protocol=4)
    with pytest.raises(pickle.UnpicklingError) as info:
        torch.load(path, weights_only=True)
    assert "149" in str(info.value)
    d = [d for d in inspect(path)[0].diagnostics if d.code == "S103"]
    assert d and "frame" in d[0].details["opcodes"]


def test_whole_module_names_class(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    path = tmp_path / "whole.pt"
    torch.save(model, path)
    snap = read(path)
    globals_ = {g.qualname for g in snap.globals}
    assert "torch.nn.modules.container.Sequential" in globals_
    # what torch itself says is unsafe is a subset of what we list
    unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    assert unsafe <= globals_
    d = security.check_weights_only(snap)
    assert d and set(d[0].details["globals"]) >= unsafe


def test_classify() -> None:
    from ckptdoctor.snapshot import GlobalRef

    assert security.is_dangerous(GlobalRef("posix", "system"))
    assert security.is_dangerous(GlobalRef("subprocess", "Popen"))
    assert security.is_dangerous(GlobalRef("builtins", "eval"))
    assert not security.is_dangerous(GlobalRef("builtins", "set"))
    assert security.is_known_safe(GlobalRef("torch._utils", "_rebuild_tensor_v2"))
    assert security.is_known_safe(GlobalRef("torch", "float8_e4m3fn"))
    assert not security.is_known_safe(GlobalRef("__main__", "Evil"))


@pytest.mark.parametrize(("py2", "py3", "dangerous"), [
    (("__builtin__", "reduce"), ("functools", "reduce"), True),
    (("__builtin__", "xrange"), ("builtins", "range"), False),
    (("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"), False),
])
def test_python2_names_are_judged_as_python3_loads_them(tmp_path: Path, py2: tuple[str, str],
                                                        py3: tuple[str, str], dangerous: bool) -> None:
    """A protocol-2 pickle from Python 2 names ``__builtin__.reduce``; pickle.load imports functools.reduce."""
    data = f"\x80\x02c{py2[0]}\n{py2[1]}\nq\x00.".encode("latin1")
    # the pickle only fetches the global (no call), so letting Python load it is harmless here: it
    # shows what Python 3 really imports for the Python 2 name
    import importlib

    assert pickle.loads(data) is getattr(importlib.import_module(py3[0]), py3[1])
    path = tmp_path / "py2.pkl"
    path.write_bytes(data)
    codes = {d.code for d in security.check_pickle_globals(read(path))}
    assert ("S101" in codes) is dangerous
    assert "S102" not in codes


def test_pickled_class_in_a_plain_pickle_quotes_what_pickle_load_raises(tmp_path: Path) -> None:
    """A gensim-style pickle of a library object: the story is pickle.load's, not torch's weights_only."""
    module_dir = tmp_path / "lib"
    module_dir.mkdir()
    (module_dir / "ckd_vanishing_lib.py").write_text("class TopicModel:\n    def __init__(self):\n        self.k = 3\n")
    sys.path.insert(0, str(module_dir))
    try:
        import ckd_vanishing_lib

        data = pickle.dumps(ckd_vanishing_lib.TopicModel(), protocol=2)
    finally:
        sys.path.remove(str(module_dir))
        sys.modules.pop("ckd_vanishing_lib", None)
    path = tmp_path / "topics.pkl"
    path.write_bytes(data)
    with pytest.raises(ModuleNotFoundError) as err:
        pickle.loads(data)  # the module is gone: nothing of ours runs
    snap = read(path)
    [d] = [d for d in security.check_pickled_classes(snap) if d.code == "C201"]
    assert f"ModuleNotFoundError: {err.value}" in d.framework_behavior
    assert "torch" not in d.framework_behavior and "torch" not in d.fix


HOSTILE = {
    "osc52\x1b]52;c;SGVsbG8=\x07clipboard": "writes the clipboard in many terminals",
    "clear\x1b[2J\x1b[Hscreen": "clears the screen",
    "over\rwrite": "overwrites the line",
    "csi\x9b31m": "a C1 control sequence introducer",
    "trojan\u202egnp.exe": "a right-to-left override",
    "line\nbreak": "breaks the table row",
}


def test_hostile_names_never_reach_the_terminal(tmp_path: Path) -> None:
    """Names, metadata and paths come from the file: shown as escapes in text, escaped in JSON, and the
    one error line on stderr is escaped too."""
    import numpy as np
    from safetensors.numpy import save_file

    path = tmp_path / "names.safetensors"
    save_file({name: np.zeros(1, np.float32) for name in HOSTILE}, str(path),
              metadata={"format": "pt", "note": "\x1b[31mred\x1b[0m"})
    unsafe = ("\x1b", "\x9b", "\r", "\u202e", "\x07")
    text = subprocess.run([sys.executable, "-m", "ckptdoctor", "inspect", str(path), "-v"], capture_output=True,
                          text=True, check=False)
    assert text.returncode == 0, text.stderr
    assert not [c for c in unsafe if c in text.stdout]
    assert "osc52\\x1b]52;c;SGVsbG8=\\x07clipboard" in text.stdout and "trojan\\u202egnp.exe" in text.stdout
    assert "line\\nbreak" in text.stdout
    doc = subprocess.run([sys.executable, "-m", "ckptdoctor", "inspect", str(path), "--format", "json"],
                         capture_output=True, text=True, check=False)
    assert not [c for c in unsafe if c in doc.stdout]
    assert {t["name"] for t in json.loads(doc.stdout)["tensors"]} == set(HOSTILE)  # same values, escaped
    # a torch zip whose archive folder carries an escape sequence and whose storage is missing: the error
    # line names the member, shown as text
    import zipfile

    import torch

    good, bad = tmp_path / "good.pt", tmp_path / "bad.pt"
    torch.save({"w": torch.ones(2)}, good)
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            rest = info.filename.split("/", 1)[1]
            if rest != "data/0":
                dst.writestr("ev\x1b[2Jil/" + rest, src.read(info))
    err = subprocess.run([sys.executable, "-m", "ckptdoctor", "inspect", str(bad)], capture_output=True, text=True,
                         check=False)
    assert err.returncode == 2 and "is missing" in err.stderr, err.stderr
    assert "\x1b" not in err.stderr and "ev\\x1b[2Jil/data/0" in err.stderr
