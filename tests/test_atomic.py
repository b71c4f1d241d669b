"""Atomic output: OUT appears complete and verified or not at all, even when the writer is killed."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ckptdoctor.errors import UsageError
from ckptdoctor.fixing.atomic import (
    TMP_MARKER,
    VerificationError,
    atomic_output,
    is_temp_name,
    remove_stale_temps,
)
from ckptdoctor.fixing.safetensors_writer import THROTTLE_ENV


def _temps(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if TMP_MARKER in p.name]


def test_writes_and_renames(tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    with atomic_output(str(out)) as fh:
        fh.write(b"hello")
        assert not out.exists()  # nothing under the final name while writing
        assert len(_temps(tmp_path)) == 1
    assert out.read_bytes() == b"hello"
    assert _temps(tmp_path) == []


def test_refuses_existing_output_without_force(tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    out.write_bytes(b"old")
    with pytest.raises(UsageError, match="--force"), atomic_output(str(out)) as fh:
        fh.write(b"new")
    assert out.read_bytes() == b"old"
    with atomic_output(str(out), force=True) as fh:
        fh.write(b"new")
    assert out.read_bytes() == b"new"


def test_never_overwrites_an_input_even_with_force(tmp_path: Path) -> None:
    src = tmp_path / "model.pt"
    src.write_bytes(b"precious")
    link = tmp_path / "alias.pt"
    os.link(src, link)
    for target in (src, link):
        with pytest.raises(UsageError, match="input"), atomic_output(str(target), force=True, inputs=[str(src)]):
            pass
    assert src.read_bytes() == b"precious"


def test_error_while_writing_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    with pytest.raises(RuntimeError), atomic_output(str(out)) as fh:
        fh.write(b"partial")
        raise RuntimeError("disk full")
    assert not out.exists()
    assert _temps(tmp_path) == []


def test_failed_verification_leaves_nothing_and_keeps_old_out(tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    out.write_bytes(b"old")

    def verify(path: str) -> None:
        assert Path(path).read_bytes() == b"bad"  # it reads the temporary file, not OUT
        raise VerificationError("mismatch")

    with pytest.raises(VerificationError), atomic_output(str(out), force=True, verify=verify) as fh:
        fh.write(b"bad")
    assert out.read_bytes() == b"old"
    assert _temps(tmp_path) == []


def test_stale_temps_of_dead_writers_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    pid = int(dead.stdout)
    stale = tmp_path / f".out.bin{TMP_MARKER}{pid}-abcd"
    stale.write_bytes(b"x")
    mine = tmp_path / f".out.bin{TMP_MARKER}{os.getpid()}-abcd"
    mine.write_bytes(b"x")
    removed = remove_stale_temps(str(tmp_path / "out.bin"))
    assert removed == [stale.name]
    assert mine.exists() and not stale.exists()
    assert is_temp_name(str(stale)) and not is_temp_name("out.bin")


@pytest.fixture(scope="module")
def source_pt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("kill")
    torch.manual_seed(0)
    sd = {f"layer{i}.weight": torch.randn(256, 256) for i in range(12)}
    path = folder / "model.pt"
    torch.save(sd, path)
    return path


def _digest(path: Path) -> str:
    return hashlib.blake2b(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kill_after_bytes", [1, 700_000, 2_000_000])
def test_killed_writer_leaves_no_out(tmp_path: Path, source_pt: Path, kill_after_bytes: int) -> None:
    """SIGKILL the converter once its temporary file holds some bytes: no OUT, and no temporary file
    that could pass for OUT. The next run cleans up and succeeds."""
    before = _digest(source_pt)
    out = tmp_path / "model.safetensors"
    env = {**os.environ, THROTTLE_ENV: "0.05"}  # sleep after each tensor so the kill lands mid-file
    proc = subprocess.Popen([sys.executable, "-m", "ckptdoctor", "convert", str(source_pt), "-o", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    killed_mid_write = False
    while time.monotonic() < deadline and proc.poll() is None:
        temps = _temps(tmp_path)
        if temps and (tmp_path / temps[0]).stat().st_size >= kill_after_bytes:
            proc.send_signal(signal.SIGKILL)
            killed_mid_write = True
            break
        time.sleep(0.005)
    proc.wait(timeout=60)
    assert killed_mid_write, proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    leftovers = _temps(tmp_path)
    assert all(name.startswith(".") and name != out.name for name in leftovers)
    assert _digest(source_pt) == before  # the input is untouched

    done = subprocess.run([sys.executable, "-m", "ckptdoctor", "convert", str(source_pt), "-o", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert _temps(tmp_path) == []  # the dead writer's temporary file was removed
    expected = torch.load(source_pt)
    back = load_file(out)
    assert set(back) == set(expected)
    for name, tensor in expected.items():
        assert torch.equal(back[name], tensor)
