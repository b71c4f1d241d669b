"""C-family file checks: custom Keras classes and Lambda layers named by a file, checked against Keras."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import pytest

import ckd_keras_models as K
import ckptdoctor
from ckptdoctor.diagnostics import Severity
from ckptdoctor.rules import run_snapshot_checks
from ckptdoctor.rules.custom_objects import locate


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("custom")
    out = {}
    for name, build in (("unregistered", K.unregistered), ("clean", K.clean), ("lambda", K.lambda_model)):
        out[name] = str(folder / f"{name}.keras")
        build().save(out[name])
    out["h5"] = str(folder / "unregistered.h5")
    K.unregistered().save(out["h5"])
    return out


def c_codes(path, code):
    return [d for d in run_snapshot_checks(ckptdoctor.read(path)) if d.code == code]


def test_unregistered_class_in_file_gives_custom_objects_fix(files):
    diag = c_codes(files["unregistered"], "C101")[0]
    assert diag.severity == Severity.ERROR
    assert "custom_objects={'Unregistered': Unregistered}" in diag.fix
    assert "from ckd_keras_models import Unregistered" in diag.fix
    assert diag.details["located"] in ("loaded", "found")
    with pytest.raises(TypeError, match="Could not locate class 'Unregistered'"):
        keras.models.load_model(files["unregistered"])
    reloaded = keras.models.load_model(files["unregistered"], custom_objects={"Unregistered": K.Unregistered})
    assert isinstance(reloaded.layers[-1], K.Unregistered)


def test_legacy_h5_names_the_h5_error(files):
    diag = c_codes(files["h5"], "C101")[0]
    assert "Unknown layer: 'Unregistered'" in diag.framework_behavior
    with pytest.raises(ValueError, match="Unknown layer: 'Unregistered'"):
        keras.models.load_model(files["h5"])


def test_registered_class_needs_only_the_import(files):
    diag = c_codes(files["clean"], "C101")[0]
    assert diag.severity == Severity.WARNING and "import ckd_keras_models" in diag.fix
    assert diag.details["registered_name"] == "ckd>Registered"
    assert keras.models.load_model(files["clean"]) is not None  # imported here, so it loads


def test_lambda_layer_needs_safe_mode_false(files):
    diag = c_codes(files["lambda"], "C104")[0]
    assert "safe_mode=False" in diag.fix
    with pytest.raises(ValueError, match="safe_mode=False"):
        keras.models.load_model(files["lambda"])
    assert keras.models.load_model(files["lambda"], safe_mode=False) is not None


def test_locate_never_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "ckd_never_imported.py"
    pkg.write_text("raise SystemExit('executed!')\nclass Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    where = locate("ckd_never_imported", "Thing")
    assert where.status == "found" and where.has_name is True
    assert locate("ckd_never_imported", "Other").has_name is False
    assert locate("no_such_module_ckd", "X").status == "missing"
    assert locate("__main__", "X").status == "main"
