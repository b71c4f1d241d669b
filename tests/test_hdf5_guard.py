"""libhdf5 crashes or loops on some damaged files; readers rehearse in a forked child first (hdf5_guard).

The two damaged files below were found by tests/test_mutations.py: a single byte changed in a file Keras
3.15 / h5py wrote. Each test first shows that plain h5py really dies or hangs on it (in a subprocess), so a
change of versions that moves the bytes shows up as a failed precondition, not as a silent pass.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from ckptdoctor.errors import InputError
from ckptdoctor.readers import read
from ckptdoctor.readers.hdf5_guard import rehearse

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

H5PY_READS_EVERYTHING = """
import sys, h5py
def visit(name, obj):
    dict(obj.attrs)
with h5py.File(sys.argv[1], "r") as f:
    dict(f.attrs)
    f.visititems(visit)
    f["vars"].attrs.get("name")
"""


def small_model() -> object:
    keras.backend.clear_session()  # the layer names, and so the file's bytes, must not depend on other tests
    return keras.Sequential([keras.Input((5,)), keras.layers.Embedding(20, 4), keras.layers.LSTM(3),
                             keras.layers.Dense(2)])


def plain_h5py(path: Path, timeout: float) -> int | None:
    """h5py's exit status reading the whole file in a subprocess; None when it did not finish in time."""
    try:
        return subprocess.run([sys.executable, "-c", H5PY_READS_EVERYTHING, str(path)],
                              capture_output=True, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        return None


def test_a_crash_in_the_child_is_one_f107_and_this_process_survives() -> None:
    with pytest.raises(InputError) as info:
        rehearse(lambda: ctypes.string_at(0), "x.h5", limit=30)
    assert info.value.code == "F107" and "crashed (SIGSEGV)" in info.value.message


def test_a_child_that_never_ends_is_killed_at_the_limit() -> None:
    def forever() -> None:
        while True:
            pass

    t0 = time.monotonic()
    with pytest.raises(InputError) as info:
        rehearse(forever, "x.h5", limit=1)
    assert info.value.code == "F107" and "did not finish" in info.value.message
    assert time.monotonic() - t0 < 20


def test_python_errors_in_the_child_are_left_to_the_real_read() -> None:
    def fails() -> None:
        raise KeyError("reported by the parent's own read, with its own message")

    assert rehearse(fails, "x.h5", limit=30) is None


def test_weights_file_that_segfaults_h5py(tmp_path: Path) -> None:
    src = tmp_path / "src.weights.h5"
    small_model().save_weights(src)
    data = src.read_bytes()
    path = tmp_path / "damaged.weights.h5"
    path.write_bytes(data[:1881] + bytes([147]) + data[1882:])
    assert plain_h5py(path, timeout=60) == -11  # precondition: h5py itself dies of SIGSEGV
    with pytest.raises(InputError) as info:
        read(path)
    assert info.value.code == "F107" and "crashed (SIGSEGV)" in info.value.message
    proc = subprocess.run([sys.executable, "-m", "ckptdoctor", "inspect", str(path)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "KERAS_BACKEND": "torch"})
    assert proc.returncode == 2 and proc.stderr.startswith("error[F107]: ") and "Traceback" not in proc.stderr


def test_weights_file_that_hangs_h5py(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src.keras"
    small_model().save(src)
    member = zipfile.ZipFile(src).read("model.weights.h5")
    path = tmp_path / "damaged.weights.h5"
    path.write_bytes(member[:2072] + bytes([69]) + member[2073:])
    assert plain_h5py(path, timeout=10) is None  # precondition: h5py itself never returns
    monkeypatch.setenv("CKPTDOCTOR_HDF5_TIMEOUT", "2")
    t0 = time.monotonic()
    with pytest.raises(InputError) as info:
        read(path)
    assert info.value.code == "F107" and "did not finish" in info.value.message
    assert time.monotonic() - t0 < 30


def test_keras_archive_with_changed_weight_bytes_fails_its_crc_as_keras_says(tmp_path: Path) -> None:
    src = tmp_path / "src.keras"
    small_model().save(src)
    data = src.read_bytes()
    with zipfile.ZipFile(src) as zf:
        info = zf.getinfo("model.weights.h5")
    at = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.file_size - 100  # a weight
    path = tmp_path / "damaged.keras"
    path.write_bytes(data[:at] + bytes([data[at] ^ 1]) + data[at + 1:])
    with pytest.raises(zipfile.BadZipFile) as keras_error:
        keras.models.load_model(path)
    with pytest.raises(InputError) as ours:
        read(path)
    assert ours.value.code == "F107" and str(keras_error.value) in ours.value.message


def test_the_guard_does_not_change_what_a_healthy_file_reads(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ok.keras"
    small_model().save(path)
    guarded = read(path)
    monkeypatch.setenv("CKPTDOCTOR_HDF5_TIMEOUT", "0")
    unguarded = read(path)
    assert [(t.name, t.shape, t.dtype) for t in guarded.tensors] == \
           [(t.name, t.shape, t.dtype) for t in unguarded.tensors]
    assert len(guarded.tensors) == 6 and not guarded.diagnostics


def test_interrupting_the_wait_kills_the_child() -> None:
    import signal

    def forever() -> None:
        while True:
            pass

    children_before = set(_children())
    previous = signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(KeyboardInterrupt):
            rehearse(forever, "x.h5", limit=60)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert set(_children()) == children_before  # killed and reaped: not running, not a zombie


def _children() -> list[int]:
    me = os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == me:
                        out.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return out


@pytest.mark.parametrize(("platform", "setting", "expected"), [
    ("linux", None, 30.0), ("linux", "5", 5.0), ("linux", "0", 0.0), ("linux", "soon", 30.0),
    ("darwin", None, 0.0), ("darwin", "5", 5.0)])
def test_rehearsal_is_on_by_default_on_linux_only(monkeypatch: pytest.MonkeyPatch, platform: str,
                                                  setting: str | None, expected: float) -> None:
    from ckptdoctor.readers import hdf5_guard

    monkeypatch.setattr(hdf5_guard.sys, "platform", platform)
    if setting is None:
        monkeypatch.delenv("CKPTDOCTOR_HDF5_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("CKPTDOCTOR_HDF5_TIMEOUT", setting)
    assert hdf5_guard.timeout_seconds() == expected
