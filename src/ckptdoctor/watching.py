"""``with ckptdoctor.watch() as report:``: explain every save/load message while the user's code runs.

What is captured, and how without changing what the user's code observes:

* **Python warnings**: ``warnings.showwarning`` is wrapped. The wrapper records the warning and calls
  the previous ``showwarning``, so filters, the once-per-location registry, ``-W error`` and pytest's
  recorder behave exactly as before. A warning that the user's filters hide is not seen (we never
  change filters); inside a user ``catch_warnings(record=True)`` block warnings go to the user's list.
* **Log records** of the absl, tensorflow, tf_keras, keras, transformers, torch, accelerate, peft and
  safetensors loggers: ``logging.Logger.callHandlers`` is wrapped. No handler is added and no level
  is changed, so ``basicConfig`` still configures, ``lastResort`` still prints, and a record is seen
  only if the user's levels let it through (TensorFlow's INFO-level "Found untraced functions" needs
  INFO enabled).
* **Exceptions** raised by ``torch.save``/``torch.load``/``Module.load_state_dict``, Keras
  ``Model.save``/``save_weights``/``load_weights``/``load_model``, safetensors
  ``save_file``/``load_file``/``save_model``/``load_model`` and transformers
  ``save_pretrained``/``from_pretrained``. They are recorded and re-raised unchanged (same object, same
  traceback plus one wrapper frame). The exception that leaves the ``with`` block is recorded too.
* **Saves**: after a successful save the written path is recorded and, when
  ``ckptdoctor.checking.check`` exists, the file is checked against the live model (never breaking
  the user's code: any failure of the check is swallowed).

Only modules already imported are patched; modules imported inside the block are patched right after
they finish executing (a meta-path hook), so nothing new is ever imported. Every patched attribute is
restored on exit, even on error; module re-exports (``torch.save``, ``keras.models.load_model``, a
user's ``from torch import load``) are swept back too. Watches nest: each records its own report.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import logging
import os
import sys
import sysconfig
import threading
import types
import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ckptdoctor.diagnostics import Diagnostic, Severity, sort_key

# (module, attribute path inside it, label shown to the user, what the call does)
TARGETS: tuple[tuple[str, str, str, str], ...] = (
    ("torch.serialization", "save", "torch.save", "save"),
    ("torch.serialization", "load", "torch.load", "load"),
    ("torch.nn.modules.module", "Module.load_state_dict", "Module.load_state_dict", "load"),
    ("torch.nn.modules.module", "Module.state_dict", "Module.state_dict", "track"),
    ("keras.src.saving.saving_api", "load_model", "keras.models.load_model", "load"),
    ("keras.src.models.model", "Model.save", "keras Model.save", "save"),
    ("keras.src.models.model", "Model.save_weights", "keras Model.save_weights", "save"),
    ("keras.src.models.model", "Model.load_weights", "keras Model.load_weights", "load"),
    ("safetensors.torch", "save_file", "safetensors.torch.save_file", "save"),
    ("safetensors.torch", "load_file", "safetensors.torch.load_file", "load"),
    ("safetensors.torch", "save_model", "safetensors.torch.save_model", "save"),
    ("safetensors.torch", "load_model", "safetensors.torch.load_model", "load"),
    ("transformers.modeling_utils", "PreTrainedModel.save_pretrained", "save_pretrained", "save"),
    ("transformers.modeling_utils", "PreTrainedModel.from_pretrained", "from_pretrained", "load"),
)
WATCHED_LOGGERS = ("absl", "tensorflow", "tf_keras", "keras", "transformers", "torch", "accelerate", "peft",
                   "safetensors", "huggingface_hub")

_local = threading.local()  # .busy: ckptdoctor itself is working (checking a file): record nothing


def _busy() -> bool:
    return getattr(_local, "busy", False)


# ---- where the user's code is -----------------------------------------------------------------

def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    dirs.add(os.path.dirname(os.path.abspath(__file__)))
    dirs.add(os.path.dirname(logging.__file__))
    return tuple(sorted(os.path.normcase(d) + os.sep for d in dirs if d))


_LIB_DIRS = _library_dirs()


def _is_library(filename: str) -> bool:
    if filename.startswith("<frozen") or filename.startswith("<built-in"):
        return True
    norm = os.path.normcase(filename)
    return norm.startswith(_LIB_DIRS) or f"{os.sep}site-packages{os.sep}" in norm or \
        f"{os.sep}dist-packages{os.sep}" in norm


def call_site() -> str:
    """``file:line`` of the innermost frame that is not library code (the user's call)."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not _is_library(filename):
            return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


# ---- the report ---------------------------------------------------------------------------------

@dataclass
class Event:
    kind: str  # warning | log | exception | save
    source: str  # the warning category, the logger name, or the function called
    message: str
    site: str  # the user's file:line
    origin: str = ""  # where the library emitted it (warnings: filename:lineno)
    path: str | None = None  # for saves: the file written
    codes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "message": self.message, "site": self.site,
                "origin": self.origin, "path": self.path, "codes": self.codes}


@dataclass
class WatchReport:
    events: list[Event] = field(default_factory=list)
    explained: list[Diagnostic] = field(default_factory=list)  # W codes, one per event finding
    checks: list[Diagnostic] = field(default_factory=list)  # from checking saved files
    saved: list[str] = field(default_factory=list)
    _seen_exceptions: list[BaseException] = field(default_factory=list, repr=False)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return sorted([*self.explained, *self.checks], key=sort_key)

    def to_json(self) -> dict[str, Any]:
        from ckptdoctor.report.json_report import envelope

        return envelope({"kind": "watch", "events": len(self.events), "saved": list(self.saved)},
                        self.diagnostics, events=[e.to_json() for e in self.events])

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WatchReport:
        report = cls(events=[Event(**{k: e.get(k) for k in ("kind", "source", "message", "site", "origin",
                                                              "path")}, codes=e.get("codes") or [])
                             for e in data.get("events", [])],
                     saved=list(data.get("subject", {}).get("saved", [])))
        for d in data.get("diagnostics", []):
            report.explained.append(Diagnostic(
                code=d["code"], name=d["name"], severity=Severity.parse(d["severity"]), message=d["message"],
                subject=d.get("subject", ""), expected=d.get("expected"), found=d.get("found"),
                framework_behavior=d.get("framework_behavior", ""), fix=d.get("fix", ""), path=d.get("path"),
                related=d.get("related", []), details=d.get("details", {})))
        return report

    def render(self) -> str:
        lines = [f"ckptdoctor watch: {len(self.events)} event(s), {len(self.diagnostics)} finding(s)"
                 + (f", saved: {', '.join(self.saved)}" if self.saved else "")]
        for ev in self.events:
            codes = f"  -> {', '.join(ev.codes)}" if ev.codes else ("  (not in catalog)" if ev.kind != "save" else "")
            lines.append(f"- {ev.kind} at {ev.site}: {ev.source}: {_short(ev.message, 160)}{codes}")
        for d in self.diagnostics:
            where = f" at {d.path}" if d.path else ""
            count = d.details.get("count", 1) if isinstance(d.details, dict) else 1
            times = f" x{count}" if count and count > 1 else ""
            lines.append(f"\n{d.severity}[{d.code}] {d.name}{times}{where}")
            lines.append(f"  What it means: {d.message}")
            harmless = d.details.get("harmless") if isinstance(d.details, dict) else None
            if harmless:
                lines.append(f"  Harmless? {harmless}")
            if d.fix:
                lines.append("  Fix: " + d.fix.replace("\n", "\n  "))
        return "\n".join(lines) + "\n"

    # -- recording (called by the watch) --
    def add(self, event: Event) -> None:
        from ckptdoctor.catalog.explaining import explain_event, to_diagnostic

        findings = explain_event(event.message, kind="exception" if event.kind == "exception" else "warning") \
            if event.message else []
        event.codes = [f.code for f in findings]
        self.events.append(event)
        for f in findings:
            diag = to_diagnostic(f, path=event.site)
            same = next((d for d in self.explained if d.code == diag.code and d.message == diag.message
                         and d.path == diag.path), None)
            if same is not None:
                same.details["count"] = same.details.get("count", 1) + 1
                same.severity = max(same.severity, diag.severity)
            else:
                self.explained.append(diag)


def _short(text: str, limit: int) -> str:
    from ckptdoctor.catalog.matcher import strip_ansi

    text = " ".join(strip_ansi(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- patching -----------------------------------------------------------------------------------

@dataclass
class _Patch:
    owner: Any  # module or class
    attr: str
    original: Any  # the raw attribute (function, classmethod, ...)
    replacement: Any
    func_original: Any  # the callable inside (for sweeping module re-exports)
    func_replacement: Any


class _ImportHook(importlib.abc.MetaPathFinder):
    """Patch a target module right after it is imported inside the watch (nothing is imported by us)."""

    def __init__(self, watch: Watch, names: set[str]) -> None:
        self.watch = watch
        self.names = names
        self._finding: set[str] = set()

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in self.names or fullname in self._finding or not self.watch.active:
            return None
        self._finding.add(fullname)
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            self._finding.discard(fullname)
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _PatchingLoader(spec.loader, self.watch)
        return spec


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, watch: Watch) -> None:
        self._loader = loader
        self._watch = watch

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        # give the module its real loader back, so nothing downstream ever sees this wrapper
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        self._watch._patch_module(module.__name__)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class Watch:
    """The context manager behind ``ckptdoctor.watch()``; ``__enter__`` returns the WatchReport."""

    def __init__(self, *, check_saves: bool = True) -> None:
        self.report = WatchReport()
        self.active = False
        self.check_saves = check_saves
        self._patches: list[_Patch] = []
        self._hook: _ImportHook | None = None
        self._prev_showwarning: Any = None
        self._my_showwarning: Any = None
        self._prev_call_handlers: Any = None
        self._my_call_handlers: Any = None
        self._state_dicts: dict[int, tuple[Any, Any]] = {}  # id(state dict) -> (weakref dict, weakref module)

    # -- context manager --
    def __enter__(self) -> WatchReport:
        self.active = True
        try:
            self._wrap_warnings()
            self._wrap_logging()
            pending = set()
            exported: dict[int, tuple[Any, Any]] = {}
            for module_name in dict.fromkeys(t[0] for t in TARGETS):
                if module_name in sys.modules:
                    exported.update(self._patch_module(module_name, sweep=False))
                else:
                    pending.add(module_name)
            if exported:
                _sweep(exported, extra=[_caller_globals()])
            if pending:
                self._hook = _ImportHook(self, pending)
                sys.meta_path.insert(0, self._hook)
        except BaseException:
            self._restore()
            raise
        return self.report

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            if exc is not None and not isinstance(exc, (SystemExit, KeyboardInterrupt, GeneratorExit)):
                self._record_exception(exc, source=type(exc).__name__, site=_traceback_site(tb))
        finally:
            self._restore()

    # -- warnings and logging --
    def _wrap_warnings(self) -> None:
        prev = warnings.showwarning
        watch = self

        def showwarning(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                        line: Any = None) -> Any:
            if watch.active and not _busy():
                watch._record_safely(Event("warning", getattr(category, "__name__", "Warning"), str(message),
                                           call_site(), origin=f"{filename}:{lineno}"))
            return prev(message, category, filename, lineno, file, line)

        self._prev_showwarning, self._my_showwarning = prev, showwarning
        warnings.showwarning = showwarning

    def _wrap_logging(self) -> None:
        prev = logging.Logger.callHandlers
        watch = self

        def callHandlers(logger: logging.Logger, record: logging.LogRecord) -> Any:
            if watch.active and not _busy() and record.name.split(".")[0] in WATCHED_LOGGERS:
                try:
                    text = record.getMessage()
                except Exception:  # a broken format string is the logger's problem, not ours
                    text = str(record.msg)
                watch._record_safely(Event("log", f"{record.name} {record.levelname}", text, call_site(),
                                           origin=f"{record.pathname}:{record.lineno}"))
            return prev(logger, record)

        self._prev_call_handlers, self._my_call_handlers = prev, callHandlers
        logging.Logger.callHandlers = callHandlers  # type: ignore[method-assign]

    # -- function patches --
    def _patch_module(self, module_name: str, *, sweep: bool = True) -> dict[int, tuple[Any, Any]]:
        """Patch the targets of one module; module functions' re-exports are swept (or returned)."""
        exported: dict[int, tuple[Any, Any]] = {}
        module = sys.modules.get(module_name)
        if module is None or not self.active:
            return exported
        for mod_name, path, label, kind in TARGETS:
            if mod_name != module_name:
                continue
            owner: Any = module
            *parents, attr = path.split(".")
            try:
                for p in parents:
                    owner = getattr(owner, p)
                raw = (owner.__dict__ if isinstance(owner, type) else vars(owner))[attr]
            except (AttributeError, KeyError):
                continue  # this version of the library has no such function
            if any(p.owner is owner and p.attr == attr for p in self._patches):
                continue
            patch = self._install(owner, attr, raw, label, kind)
            if patch is not None and isinstance(owner, types.ModuleType):
                exported[id(patch.func_original)] = (patch.func_original, patch.func_replacement)
        if sweep and exported:
            _sweep(exported, extra=[_caller_globals()])
        return exported

    def _install(self, owner: Any, attr: str, raw: Any, label: str, kind: str) -> _Patch | None:
        wrap_kind: type | None = None
        func = raw
        if isinstance(raw, (classmethod, staticmethod)):
            wrap_kind, func = type(raw), raw.__func__
        if not callable(func):
            return None
        wrapper = self._wrapper(func, label, kind)
        replacement = wrap_kind(wrapper) if wrap_kind is not None else wrapper
        setattr(owner, attr, replacement)
        patch = _Patch(owner, attr, raw, replacement, func, wrapper)
        self._patches.append(patch)
        return patch

    def _wrapper(self, func: Callable[..., Any], label: str, kind: str) -> Callable[..., Any]:
        watch = self

        @functools.wraps(func)
        def ckptdoctor_watched(*args: Any, **kwargs: Any) -> Any:
            if not watch.active or _busy():
                return func(*args, **kwargs)
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                if not isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
                    watch._record_exception(exc, source=label, site=call_site())
                raise
            if kind == "track":
                watch._track_state_dict(args, kwargs, result)
            elif kind == "save":
                watch._after_save(label, args, kwargs)
            return result

        return ckptdoctor_watched

    # -- recording --
    def _record_safely(self, event: Event) -> None:
        _local.busy = True
        try:
            self.report.add(event)
        except Exception:  # explaining must never break the user's program
            pass
        finally:
            _local.busy = False

    def _record_exception(self, exc: BaseException, *, source: str, site: str) -> None:
        if any(e is exc for e in self.report._seen_exceptions):
            return
        self.report._seen_exceptions.append(exc)
        self._record_safely(Event("exception", source, f"{type(exc).__name__}: {exc}", site))

    def _track_state_dict(self, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        # only the top-level call: torch recurses into children with destination=...
        if len(args) != 1 or kwargs.get("destination") is not None:
            return
        try:
            self._state_dicts[id(result)] = (weakref.ref(result), weakref.ref(args[0]))
        except TypeError:
            return
        if len(self._state_dicts) > 64:
            self._state_dicts.pop(next(iter(self._state_dicts)))

    def _model_for(self, obj: Any) -> Any:
        try:
            import torch

            if isinstance(obj, torch.nn.Module):
                return obj
        except Exception:
            pass
        candidates = [obj]
        if isinstance(obj, dict):
            candidates += [v for v in obj.values() if isinstance(v, dict)]
        for cand in candidates:
            ref = self._state_dicts.get(id(cand))
            if ref is not None and ref[0]() is cand:
                return ref[1]()
        return None

    def _after_save(self, label: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        _local.busy = True
        try:
            model, path = _saved(label, args, kwargs)
            if path is None:
                return
            if label.startswith(("torch.save", "safetensors.torch.save_file")):
                model = self._model_for(model)
            path = os.fspath(path)
            if path in self.report.saved:
                return
            self.report.saved.append(path)
            self.report.events.append(Event("save", label, path, call_site(), path=path))
            if model is not None and self.check_saves:
                self.report.checks.extend(_run_check(model, path))
        except Exception:
            pass
        finally:
            _local.busy = False

    # -- restoring --
    def _restore(self) -> None:
        self.active = False
        if self._hook is not None and self._hook in sys.meta_path:
            sys.meta_path.remove(self._hook)
        self._hook = None
        swept: dict[int, tuple[Any, Any]] = {}
        for p in reversed(self._patches):
            current = (p.owner.__dict__ if isinstance(p.owner, type) else vars(p.owner)).get(p.attr)
            if current is p.replacement:
                setattr(p.owner, p.attr, p.original)
            if isinstance(p.owner, types.ModuleType):
                swept[id(p.func_replacement)] = (p.func_replacement, p.func_original)
        if swept:
            _sweep(swept)
        self._patches.clear()
        if self._my_showwarning is not None and warnings.showwarning is self._my_showwarning:
            warnings.showwarning = self._prev_showwarning
        if self._my_call_handlers is not None and logging.Logger.__dict__.get("callHandlers") is self._my_call_handlers:
            logging.Logger.callHandlers = self._prev_call_handlers  # type: ignore[method-assign]


def _caller_globals() -> dict[str, Any] | None:
    frame = sys._getframe(1)
    while frame is not None and _is_library(frame.f_code.co_filename):
        frame = frame.f_back
    return frame.f_globals if frame is not None else None


def _sweep(mapping: dict[int, tuple[Any, Any]], extra: list[dict[str, Any] | None] | None = None) -> None:
    """Replace every module-level reference to ``old`` by ``new`` (re-exports, ``from x import f``)."""
    namespaces: list[dict[str, Any]] = [ns for ns in (extra or []) if ns is not None]
    for module in list(sys.modules.values()):
        if isinstance(module, types.ModuleType):
            try:
                namespaces.append(vars(module))
            except TypeError:
                continue
    for ns in namespaces:
        try:
            items = list(ns.items())
        except RuntimeError:
            continue
        for name, value in items:
            hit = mapping.get(id(value))
            if hit is not None and hit[0] is value:
                ns[name] = hit[1]


def _saved(label: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """(the object or model saved, the path written) for each save function."""
    def arg(i: int, *names: str) -> Any:
        if len(args) > i:
            return args[i]
        for n in names:
            if n in kwargs:
                return kwargs[n]
        return None

    path = arg(1, "f", "filepath", "filename", "save_directory")
    if not isinstance(path, (str, os.PathLike)):
        return None, None
    return arg(0, "obj", "tensors", "model"), path


def _run_check(model: Any, path: str) -> list[Diagnostic]:
    """``ckptdoctor.checking.check(model, path)`` when another part of ckptdoctor provides it."""
    try:
        if importlib.util.find_spec("ckptdoctor.checking") is None:
            return []
        checking = importlib.import_module("ckptdoctor.checking")
        check = getattr(checking, "check", None)
        if not callable(check):
            return []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = check(model, path)
        diags = getattr(result, "diagnostics", result)
        return [d for d in diags if isinstance(d, Diagnostic)] if diags else []
    except Exception:  # a check that fails must not break the user's save
        return []


def _traceback_site(tb: Any) -> str:
    site = "?"
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not _is_library(filename):
            site = f"{filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return site


def watch(*, check_saves: bool = True) -> Watch:
    """Watch the save and load calls in a ``with`` block and explain every warning, log and error.

    >>> with ckptdoctor.watch() as report:
    ...     torch.save(model.state_dict(), "chatbot.pt")
    ...     model.load_state_dict(torch.load("chatbot.pt"))
    >>> print(report.render())
    """
    return Watch(check_saves=check_saves)


def iter_events(report: WatchReport) -> Iterator[Event]:
    return iter(report.events)


def run_main(report_path: str, argv: list[str]) -> None:
    """Entry point of ``ckptdoctor run``'s child process: run a script as ``__main__`` under watch()."""
    import json
    import runpy

    report: WatchReport | None = None
    try:
        if argv and argv[0] == "-m":
            if len(argv) < 2:
                raise SystemExit("ckptdoctor run: -m needs a module name")
            sys.argv = [argv[1], *argv[2:]]
            sys.path[0] = os.getcwd()  # what `python -m` puts first
            with watch() as report:
                runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            script = argv[0]
            sys.argv = list(argv)
            sys.path[0] = os.path.dirname(os.path.abspath(script))  # what `python script.py` puts first
            with watch() as report:
                runpy.run_path(script, run_name="__main__")
    finally:
        if report is not None:
            try:
                with open(report_path, "w", encoding="utf-8") as fh:
                    json.dump(report.to_json(), fh, default=str)
            except Exception:  # the script's own outcome matters more than our report
                pass
