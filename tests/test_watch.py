"""``ckptdoctor.watch()`` with the real libraries: each message is triggered for real, and both
``watch()`` and ``explain`` (on the text the library produced) must name the entry and its variable
parts. Also: nothing the user's code observes changes, everything is restored, watches nest."""

from __future__ import annotations

import logging
import os
import pickle
import sys
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import ckptdoctor
from ckptdoctor.catalog.explaining import explain
from ckptdoctor.diagnostics import Diagnostic, Severity
from ckptdoctor.watching import WatchReport


class Net(nn.Module):
    def __init__(self, hidden: int = 16, head: str = "fc") -> None:
        super().__init__()
        self.emb = nn.Embedding(100, 8)
        self.lstm = nn.LSTM(8, hidden, batch_first=True)
        setattr(self, head, nn.Linear(hidden, 2))


def watched(fn: Callable[[], Any]) -> tuple[WatchReport, BaseException | None, list[warnings.WarningMessage]]:
    """Run fn under watch(); return the report, the exception fn raised, and the warnings it showed."""
    exc: BaseException | None = None
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with ckptdoctor.watch(check_saves=False) as report:
            try:
                fn()
            except Exception as e:
                exc = e
    return report, exc, shown


def diag(report: WatchReport, code: str) -> Diagnostic:
    found = [d for d in report.diagnostics if d.code == code]
    assert found, [d.code for d in report.diagnostics]
    return found[0]


def variables(report: WatchReport, code: str) -> dict[str, Any]:
    return diag(report, code).details["variables"]


def explained(text: str, code: str) -> dict[str, Any]:
    result = explain(text)
    assert code in result.codes, result.codes
    return next(f for f in result if f.code == code).variables


def exc_text(exc: BaseException | None) -> str:
    assert exc is not None
    return f"{type(exc).__name__}: {exc}"


# ---- torch ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def torch_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("torch")
    torch.manual_seed(0)
    files = {"sd": d / "net.pt", "np": d / "np.pt", "cuda": d / "cuda.pt", "lfs": d / "lfs.pt", "p4": d / "p4.pt",
             "ts": d / "ts.pt"}
    torch.save(Net().state_dict(), files["sd"])
    torch.save({"model": Net().state_dict(), "best": np.arange(3)}, files["np"])
    # a checkpoint whose storages are tagged cuda:0, as saved from a GPU (the file is otherwise identical)
    with zipfile.ZipFile(files["sd"]) as zin, zipfile.ZipFile(files["cuda"], "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            zout.writestr(info.filename, data)
    files["lfs"].write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    with open(files["p4"], "wb") as fh:
        pickle.dump({"a": 1}, fh, protocol=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(nn.Linear(2, 2)), str(files["ts"]))
    return files


def test_torch_missing_and_unexpected_keys(torch_files: dict[str, Path]) -> None:
    sd = torch.load(torch_files["sd"])
    report, exc, _ = watched(lambda: Net(head="head").load_state_dict(sd))
    for v in (variables(report, "W201"), explained(exc_text(exc), "W201")):
        assert v["model_class"] == "Net"
        assert v["missing_keys"] == ["head.weight", "head.bias"]
        assert v["unexpected_keys"] == ["fc.weight", "fc.bias"]
        assert "'fc' in the file is 'head'" in v["prefix_story"]
    assert diag(report, "W201").severity == Severity.ERROR
    line = _line_of('Net(head="head").load_state_dict')
    assert diag(report, "W201").path == f"{__file__}:{line}"  # the user's call site


def _line_of(snippet: str) -> int:
    lines = Path(__file__).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if snippet in line and "watched(" in line)


def test_torch_module_prefix(torch_files: dict[str, Path]) -> None:
    sd = {f"module.{k}": v for k, v in torch.load(torch_files["sd"]).items()}
    report, exc, _ = watched(lambda: Net().load_state_dict(sd))
    for v in (variables(report, "W201"), explained(exc_text(exc), "W201")):
        assert v["missing_count"] == 7 and v["unexpected_count"] == 7
        assert "'module.'" in v["prefix_story"]


def test_torch_unexpected_only(torch_files: dict[str, Path]) -> None:
    sd = dict(torch.load(torch_files["sd"]), **{"extra.weight": torch.ones(1)})
    report, exc, _ = watched(lambda: Net().load_state_dict(sd))
    for v in (variables(report, "W202"), explained(exc_text(exc), "W202")):
        assert v["unexpected_keys"] == ["extra.weight"]


def test_torch_size_mismatch_names_lstm_units(torch_files: dict[str, Path]) -> None:
    sd = torch.load(torch_files["sd"])
    report, exc, _ = watched(lambda: Net(hidden=32).load_state_dict(sd, strict=False))
    d = diag(report, "W203")
    assert len(explain(exc_text(exc))[0].instances) == 5  # weight_ih, weight_hh, bias_ih, bias_hh, fc.weight
    for v in (d.details["variables"], explained(exc_text(exc), "W203")):
        assert v["key"] == "lstm.weight_ih_l0"
        assert (v["found_shape"], v["expected_shape"]) == ("(64, 8)", "(128, 8)")
        assert "LSTM(hidden_size=16)" in v["shape_story"] and "LSTM(hidden_size=32)" in v["shape_story"]


def test_torch_weights_only_main_class(tmp_path: Path) -> None:
    main = sys.modules["__main__"]

    class MainNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 2)

    MainNet.__module__, MainNet.__qualname__ = "__main__", "MainNet"
    main.MainNet = MainNet  # type: ignore[attr-defined]
    try:
        torch.save(MainNet(), tmp_path / "whole.pt")
        report, exc, _ = watched(lambda: torch.load(tmp_path / "whole.pt"))
        for v in (variables(report, "W205"), explained(exc_text(exc), "W205")):
            assert v["global"] == "__main__.MainNet"
            assert "add_safe_globals([(MainNet, '__main__.MainNet')])" in v["allow_call"]
        del main.MainNet
        report, exc, _ = watched(lambda: torch.load(tmp_path / "whole.pt", weights_only=False))
        for v in (variables(report, "W209"), explained(exc_text(exc), "W209")):
            assert (v["class_name"], v["module"]) == ("MainNet", "__main__")
    finally:
        main.__dict__.pop("MainNet", None)


def test_torch_weights_only_numpy_global(torch_files: dict[str, Path]) -> None:
    report, exc, _ = watched(lambda: torch.load(torch_files["np"]))
    expected_global = str(exc).split("GLOBAL ")[1].split()[0]  # what torch itself names
    for v in (variables(report, "W205"), explained(exc_text(exc), "W205")):
        assert v["global"] == expected_global
        assert expected_global.startswith("numpy.")
        assert f"'{expected_global}')]" in v["allow_call"] and "numpy._core" in v["allow_call"]
        assert "numpy.core" in v["global_note"] and "numpy._core" in v["global_note"]


def test_torch_cuda_checkpoint_on_cpu(torch_files: dict[str, Path]) -> None:
    report, exc, _ = watched(lambda: torch.load(torch_files["cuda"]))
    for v in (variables(report, "W210"), explained(exc_text(exc), "W210")):
        assert v["device"] == "CUDA"
    assert "map_location='cpu'" in diag(report, "W210").fix


def test_torch_meta_parameters_not_loaded(torch_files: dict[str, Path]) -> None:
    sd = torch.load(torch_files["sd"])
    with torch.device("meta"):
        model = Net()
    report, _, shown = watched(lambda: model.load_state_dict(sd))
    d = diag(report, "W212")
    assert d.severity == Severity.WARNING
    texts = [str(w.message) for w in shown if "meta parameter" in str(w.message)]
    assert len(texts) == 7  # the user still sees every warning
    assert explained(texts[0], "W212")["key"] == d.details["variables"]["key"] == "emb.weight"


def test_torch_file_kind_errors(torch_files: dict[str, Path]) -> None:
    report, exc, shown = watched(lambda: torch.load(torch_files["ts"]))
    # torch 2.13 warns that it dispatches to torch.jit.load, then refuses under weights_only=True
    assert diag(report, "W215").severity == Severity.ERROR and "W215" in explain(exc_text(exc)).codes
    assert "W215" in explain(next(str(w.message) for w in shown if "TorchScript" in str(w.message))).codes
    report, exc, shown = watched(lambda: torch.load(torch_files["p4"]))
    assert variables(report, "W206")["operand"] == explained(exc_text(exc), "W206")["operand"] == "149"
    assert variables(report, "W219")["protocol"] == "4"
    assert explained(next(str(w.message) for w in shown if "pickle protocol" in str(w.message)), "W219")
    report, exc, _ = watched(lambda: torch.load(torch_files["lfs"], weights_only=False))
    assert variables(report, "W217")["byte"] == explained(exc_text(exc), "W217")["byte"] == "v"
    report, exc, _ = watched(lambda: torch.jit.load(str(torch_files["sd"])))
    assert "W224" in explain(exc_text(exc)).codes  # torch.jit.load is not watched; explain still knows it
    report, exc, _ = watched(lambda: Net().load_state_dict(nn.Linear(2, 2)))
    assert variables(report, "W218")["type"].startswith("<class")


def test_torch_save_local_object_and_complex_cast(tmp_path: Path) -> None:
    def local() -> nn.Module:
        class Local(nn.Module):
            pass

        return Local()

    report, exc, _ = watched(lambda: torch.save(local(), tmp_path / "x.pt"))
    assert "Local" in variables(report, "W221")["object"] and "W221" in explain(exc_text(exc)).codes
    lin = nn.Linear(2, 2)
    report, _, shown = watched(lambda: lin.load_state_dict({"weight": torch.ones(2, 2, dtype=torch.complex64),
                                                            "bias": torch.ones(2)}))
    texts = [str(w.message) for w in shown if "imaginary" in str(w.message)]
    if texts:  # TORCH_WARN_ONCE: shown once per process
        assert diag(report, "W223").severity == Severity.WARNING
        assert "W223" in explain(texts[0]).codes


# ---- safetensors ------------------------------------------------------------------------------

def test_safetensors_messages(tmp_path: Path, torch_files: dict[str, Path]) -> None:
    # imported at module level, like user code: watch() patches these references too
    emb = nn.Embedding(10, 4)
    tied = {"emb.weight": emb.weight.data, "out.weight": emb.weight.data}
    report, exc, _ = watched(lambda: save_file(tied, tmp_path / "t.safetensors"))
    for v in (variables(report, "W301"), explained(exc_text(exc), "W301")):
        assert sorted(v["name_list"]) == ["emb.weight", "out.weight"]
    report, exc, _ = watched(lambda: save_file({"x": torch.ones(3, 4).t()}, tmp_path / "n.safetensors"))
    assert variables(report, "W302")["key"] == explained(exc_text(exc), "W302")["key"] == "x"
    report, exc, _ = watched(lambda: load_file(torch_files["sd"]))
    assert "W303" in explain(exc_text(exc)).codes and diag(report, "W303")
    good = tmp_path / "g.safetensors"
    save_file({"a": torch.ones(64)}, good)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:-16])
    report, exc, _ = watched(lambda: load_file(cut))
    assert "W304" in explain(exc_text(exc)).codes and diag(report, "W304")
    report, exc, _ = watched(lambda: save_file({"b": 1}, tmp_path / "b.safetensors"))  # type: ignore[dict-item]
    assert variables(report, "W305")["key"] == explained(exc_text(exc), "W305")["key"] == "b"


# ---- keras (one set of module-scoped files) ---------------------------------------------------

@pytest.fixture(scope="module")
def keras_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    from keras import layers

    d = tmp_path_factory.mktemp("keras")

    def chatbot(units: int, extra: bool = True) -> keras.Model:
        stack = [keras.Input((20,), dtype="int32"), layers.Embedding(1000, 64), layers.LSTM(units)]
        if extra:
            stack.append(layers.Dense(2, activation="softmax"))
        return keras.Sequential(stack)

    seed = chatbot(128)
    paths = {"keras": d / "seed.keras", "h5": d / "seed.h5", "weights": d / "seed.weights.h5"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("absl").setLevel(logging.ERROR)
        seed.save(paths["keras"])
        seed.save(paths["h5"])
        seed.save_weights(paths["weights"])
        logging.getLogger("absl").setLevel(logging.NOTSET)

        class NoArgScale(layers.Layer):  # unregistered custom layer
            def call(self, x):  # type: ignore[no-untyped-def]
                return x * 2.0

        custom = keras.Sequential([keras.Input((3,)), NoArgScale()])
        paths["custom_keras"], paths["custom_h5"] = d / "custom.keras", d / "custom.h5"
        custom.save(paths["custom_keras"])
        custom.save(paths["custom_h5"])
        lam = keras.Sequential([keras.Input((3,)), layers.Lambda(lambda t: t * 2)])
        paths["lambda"] = d / "lambda.keras"
        lam.save(paths["lambda"])
    return {"keras": keras, "layers": layers, "chatbot": chatbot, "paths": paths, "dir": d}


def test_keras_h5_save_legacy_warning_via_absl(keras_env: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    model = keras_env["chatbot"](8)
    path = keras_env["dir"] / "again.h5"
    with caplog.at_level(logging.WARNING):
        report, exc, _ = watched(lambda: model.save(path))
    assert exc is None
    assert str(path) in report.saved
    ev = next(e for e in report.events if e.kind == "log")
    assert ev.source.startswith("absl") and "W102" in ev.codes
    assert diag(report, "W102").severity == Severity.INFO
    logged = [r.getMessage() for r in caplog.records if r.name == "absl"]
    assert logged and "W102" in explain(logged[0]).codes  # the user's handlers still got the record


def test_keras_load_h5_no_training_configuration(keras_env: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    keras = keras_env["keras"]
    with caplog.at_level(logging.WARNING):
        report, exc, _ = watched(lambda: keras.models.load_model(keras_env["paths"]["h5"]))
    assert exc is None and diag(report, "W104")
    assert "W104" in explain("\n".join(r.getMessage() for r in caplog.records)).codes


def test_keras_lstm_128_vs_64_total_objects(keras_env: dict[str, Any]) -> None:
    model_v2 = keras_env["chatbot"](64)
    report, exc, _ = watched(lambda: model_v2.load_weights(keras_env["paths"]["weights"]))
    d = diag(report, "W107")
    assert d.severity == Severity.ERROR
    for v in (d.details["variables"], explained(exc_text(exc), "W107")):
        assert v["count"] == "2"
        assert (v["expected_shape"], v["found_shape"]) == ("(64, 256)", "(64, 512)")
        assert "4x128 units" in v["shape_story"] and "4x64 units" in v["shape_story"]
        assert [o.split()[0] for o in v["failed_objects"]] == ["LSTMCell", "Dense"]
    # skip_mismatch=True: the same text as a warning, and a half-loaded model
    report, exc, shown = watched(lambda: model_v2.load_weights(keras_env["paths"]["weights"], skip_mismatch=True))
    assert exc is None
    assert diag(report, "W107").severity == Severity.WARNING
    text = next(str(w.message) for w in shown if "could not be loaded" in str(w.message))
    assert explained(text, "W107")["found_shape"] == "(64, 512)"


def test_keras_h5_shape_and_layer_count(keras_env: dict[str, Any]) -> None:
    model_v2 = keras_env["chatbot"](64)
    report, exc, _ = watched(lambda: model_v2.load_weights(keras_env["paths"]["h5"]))
    for v in (variables(report, "W110"), explained(exc_text(exc), "W110")):
        assert v["index"] == "1" and v["layer"].startswith("lstm")
        assert (v["expected_shape"], v["found_shape"]) == ("(64, 256)", "(64, 512)")
    report, exc, shown = watched(lambda: model_v2.load_weights(keras_env["paths"]["h5"], skip_mismatch=True))
    w111 = [d for d in report.diagnostics if d.code == "W111"]
    texts = [str(w.message) for w in shown if "Skipping loading weights" in str(w.message)]
    assert len(texts) == len(w111) == 4  # kernel, recurrent_kernel, bias, dense kernel
    assert {d.severity for d in w111} == {Severity.WARNING}
    assert explained(texts[0], "W111")["found_shape"] == "(64, 512)"
    fewer = keras_env["chatbot"](128, extra=False)
    report, exc, _ = watched(lambda: fewer.load_weights(keras_env["paths"]["h5"]))
    for v in (variables(report, "W112"), explained(exc_text(exc), "W112")):
        assert (v["expected_layers"], v["found_layers"]) == ("2", "3")


def test_keras_custom_objects_and_lambda(keras_env: dict[str, Any]) -> None:
    keras, paths = keras_env["keras"], keras_env["paths"]
    report, exc, _ = watched(lambda: keras.models.load_model(paths["custom_keras"]))
    for v in (variables(report, "W114"), explained(exc_text(exc), "W114")):
        assert v["class_name"] == "NoArgScale"
    assert "custom_objects={'NoArgScale': NoArgScale}" in diag(report, "W114").fix
    assert "W116" in explain(exc_text(exc)).codes
    report, exc, _ = watched(lambda: keras.models.load_model(paths["custom_h5"]))
    for v in (variables(report, "W115"), explained(exc_text(exc), "W115")):
        assert v["class_name"] == "NoArgScale"
    report, exc, _ = watched(lambda: keras.models.load_model(paths["lambda"]))
    assert diag(report, "W119") and "W119" in explain(exc_text(exc)).codes
    assert "safe_mode=False" in diag(report, "W119").fix


def test_keras_api_misuse(keras_env: dict[str, Any]) -> None:
    keras, layers, paths, d = keras_env["keras"], keras_env["layers"], keras_env["paths"], keras_env["dir"]
    unbuilt = keras.Sequential([layers.Dense(2)])
    report, exc, _ = watched(lambda: unbuilt.load_weights(paths["weights"]))
    assert diag(report, "W125") and "W125" in explain(exc_text(exc)).codes
    model = keras_env["chatbot"](8)
    report, exc, _ = watched(lambda: model.save_weights(d / "w.h5"))
    assert variables(report, "W123")["path"] == explained(exc_text(exc), "W123")["path"] == str(d / "w.h5")
    report, exc, _ = watched(lambda: keras.models.load_model(paths["weights"]))
    assert diag(report, "W149") and "W149" in explain(exc_text(exc)).codes
    report, exc, _ = watched(lambda: model.save(d / "noext"))
    assert diag(report, "W122") and "W122" in explain(exc_text(exc)).codes


# ---- the watch itself -------------------------------------------------------------------------

def _state() -> tuple[Any, ...]:
    return (torch.save, torch.load, torch.serialization.save, nn.Module.load_state_dict, nn.Module.state_dict,
            warnings.showwarning, logging.Logger.callHandlers, len(sys.meta_path), list(logging.getLogger().handlers))


def test_restores_everything_even_on_error(tmp_path: Path) -> None:
    before = _state()
    err = RuntimeError("boom")
    with pytest.raises(RuntimeError) as info, ckptdoctor.watch(check_saves=False) as report:
        assert torch.save is not before[0]  # patched inside
        assert list(logging.getLogger().handlers) == before[-1]  # no handler added
        raise err
    assert info.value is err  # re-raised unchanged
    assert _state() == before
    assert report.events[-1].kind == "exception" and "boom" in report.events[-1].message


def test_exceptions_from_patched_calls_are_the_same_object(torch_files: dict[str, Path]) -> None:
    sd = torch.load(torch_files["sd"])
    with ckptdoctor.watch(check_saves=False) as report:
        with pytest.raises(RuntimeError) as info:
            Net(hidden=32).load_state_dict(sd)
        original_tb_frames = [f.name for f in __import__("traceback").extract_tb(info.value.__traceback__)]
    assert "load_state_dict" in original_tb_frames
    assert sum(1 for e in report.events if e.kind == "exception") == 1


def test_nested_watches_and_user_filters() -> None:
    with ckptdoctor.watch(check_saves=False) as outer:
        with ckptdoctor.watch(check_saves=False) as inner, warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("Casting complex values to real discards the imaginary part", UserWarning, stacklevel=1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the user's filters still decide
            with pytest.raises(UserWarning):
                warnings.warn("Casting complex values to real discards the imaginary part", UserWarning, stacklevel=1)
            warnings.simplefilter("ignore")
            warnings.warn("Casting complex values to real discards the imaginary part", UserWarning, stacklevel=1)
    assert [e.codes for e in inner.events] == [["W223"]]
    assert [e.codes for e in outer.events] == [["W223"]]  # the ignored and the raised one were never shown


def test_report_json_round_trip(torch_files: dict[str, Path]) -> None:
    sd = torch.load(torch_files["sd"])
    report, _, _ = watched(lambda: Net(hidden=32).load_state_dict(sd))
    data = report.to_json()
    assert data["tool"]["name"] == "ckptdoctor" and data["events"][0]["codes"] == ["W203"]
    again = WatchReport.from_json(data)
    assert [d.code for d in again.diagnostics] == [d.code for d in report.diagnostics]
    assert "W203" in again.render() and "torch-size-mismatch" in report.render()


def test_save_records_the_written_path(tmp_path: Path) -> None:
    model = Net()
    with ckptdoctor.watch() as report:  # with the post-save check when ckptdoctor.checking exists
        torch.save(model.state_dict(), tmp_path / "ok.pt")
    assert report.saved == [str(tmp_path / "ok.pt")]
    assert torch.load(tmp_path / "ok.pt").keys() == model.state_dict().keys()  # the user's save is unchanged
