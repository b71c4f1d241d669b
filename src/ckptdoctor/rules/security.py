"""S family (code a file would execute when loaded) and C2xx (classes a pickle needs to rebuild).

Every global a pickle names is imported by ``pickle``/``torch.load(weights_only=False)`` and, when
REDUCE/NEWOBJ use it, called. Readers record these globals (``Snapshot.globals`` and
``metadata["pickle_globals"]`` with counts and uses) without importing anything; this module judges them.
"""

from __future__ import annotations

from ckptdoctor.diagnostics import Diagnostic, Severity
from ckptdoctor.rules.registry import Rule, snapshot_check
from ckptdoctor.snapshot import GlobalRef, Snapshot

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see ckptdoctor/__init__.py
if TYPE_CHECKING:
    from typing import Any

CODE_EXECUTION = Rule("S101", "code-execution-global", Severity.ERROR,
                      "The pickle would run a function that executes code, starts processes or touches files.", """
    ## What it means
    The file's pickle names a global such as `os.system`, `subprocess.Popen`, `builtins.eval`,
    `builtins.open` or `runpy._run_code`, and (through REDUCE) asks the loader to call it. Pickle runs
    whatever the file says while loading: this is how malicious checkpoints work.

    ## Why it happens
    A checkpoint was crafted (or tampered with) to run code on load, usually through a `__reduce__`
    method that returns `(os.system, ("...",))`. No normal `torch.save`/`pickle.dump` of model weights
    produces these globals.

    ## What the framework does
    `pickle.load`, `torch.load(weights_only=False)`, `np.load(allow_pickle=True)` and
    `joblib.load` call it while loading, with the permissions of your process.
    `torch.load(weights_only=True)` (the default since torch 2.6) refuses the file: `os`, `posix`, `nt`
    and `sys` are blocked outright, other globals are "not an allowed global by default".

    ## Example
    ```python
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch /tmp/pwned",))
    torch.save({"model": sd, "x": Evil()}, "model.pt")   # data.pkl now names posix.system
    ```

    ## Fix
    Do not load the file with pickle, torch.load(weights_only=False) or np.load(allow_pickle=True).
    Ask for the weights as safetensors, or read the tensors without unpickling (ckptdoctor lists them).
""")

UNKNOWN_GLOBAL = Rule("S102", "unknown-global", Severity.WARNING,
                      "The pickle names a global that is not on ckptdoctor's known-safe list.", """
    ## What it means
    Loading imports this module (running its import-time code) and calls the function or rebuilds
    the object it names. It is not one of the tensor, container, dtype and numpy rebuild functions a
    checkpoint normally needs, and not a class instantiated from state.

    ## Why it happens
    Training scripts pickle configuration objects, callbacks, lambdas wrapped in `functools.partial`,
    or custom tensor subclasses into checkpoints. It can also be a crafted payload.

    ## What the framework does
    `torch.load(weights_only=True)` refuses it with `Unsupported global: GLOBAL x.y was not an allowed
    global by default`. Plain pickle imports and calls it.

    ## Fix
    Check what the global is. If you trust the file, allowlist it with
    `torch.serialization.add_safe_globals([...])`; better, save only tensors and plain data
    (`model.state_dict()`, numbers, strings).
""")

WEIGHTS_ONLY = Rule("S103", "weights-only-load-refused", Severity.WARNING,
                    "torch.load(weights_only=True), the default since torch 2.6, will refuse this file.", """
    ## What it means
    The file holds something torch's weights-only unpickler does not allow: a global outside its
    allowlist (a class from your code, `numpy.core.multiarray._reconstruct`, `argparse.Namespace`,
    `collections.defaultdict`...), a pickle protocol above 2 written by plain pickle (opcodes such as
    FRAME, 149), a TorchScript archive, or the torch <= 0.3 tar format.

    ## What the framework does
    torch >= 2.6: `_pickle.UnpicklingError: Weights only load failed ... Unsupported global: GLOBAL
    numpy.core.multiarray._reconstruct was not an allowed global by default. Please use
    torch.serialization.add_safe_globals([...])`, or `Unsupported operand 149` for protocol 4 pickles.
    torch 2.4/2.5 instead warn with a FutureWarning on every load.

    ## Fix
    If you trust the file: `torch.serialization.add_safe_globals([...])` with every global listed
    (files saved with numpy < 2 name `numpy.core.*`, numpy >= 2 calls it `numpy._core.*`: pass
    `(numpy._core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct")` pairs), or use the
    `torch.serialization.safe_globals([...])` context manager. Long term, re-save with only tensors and
    plain Python values: `torch.save(model.state_dict(), path)`.
""")

OBJECT_ARRAY = Rule("S104", "numpy-object-array", Severity.WARNING,
                    "A NumPy array of dtype object is stored as a pickle.", """
    ## What it means
    `.npy`/`.npz` arrays with dtype `object` are not raw numbers: the array is a pickle inside the file.

    ## What the framework does
    `np.load` refuses it (`Object arrays cannot be loaded when allow_pickle=False`). With
    `allow_pickle=True` it unpickles, which runs any code the pickle names.

    ## Fix
    Store numeric arrays, or strings as fixed-width `U`/`S` dtypes. Load object arrays only from
    sources you trust.
""")

PICKLED_CLASS = Rule("C201", "pickled-class", Severity.INFO,
                     "The pickle stores an instance of a class from your code; loading needs that exact class.", """
    ## What it means
    The file stores an object of a class such as `__main__.ChatbotModel` (a whole `torch.save(model)`
    or a config object). Pickle saves only the class's module and name, never its code.

    ## Why it happens
    `torch.save(model)` instead of `torch.save(model.state_dict())`, or a checkpoint dict that holds
    custom objects.

    ## What the framework does
    torch >= 2.6 (`weights_only=True`): `Unsupported global: GLOBAL __main__.ChatbotModel was not an
    allowed global by default`. With `weights_only=False`, a process that does not define the class
    under the same module and name fails with `AttributeError: Can't get attribute 'ChatbotModel' on
    <module '__main__'>`; one that defines a different class of that name loads it silently.
    A plain pickle of a library object (a gensim or scikit-learn model, a tokenizer) needs that
    library: `pickle.load` raises `ModuleNotFoundError: No module named 'gensim'` without it, and
    `AttributeError: Can't get attribute ...` when a later version renamed or moved the class.

    ## Fix
    Save `model.state_dict()` and rebuild the model from code before `load_state_dict`. To load this
    file as is, import the class under the same module path and allowlist it:
    `torch.serialization.add_safe_globals([ChatbotModel])`. For a library object, load it where a
    compatible version of the library is installed, or save arrays and plain values instead.
""")

# ---- lists ---------------------------------------------------------------------------------------------

# any global from these modules runs code, spawns processes, touches files or the network
DANGEROUS_MODULES = (
    "os", "posix", "nt", "subprocess", "_posixsubprocess", "sys", "runpy", "importlib",
    "pty", "socket", "shutil", "webbrowser", "commands", "popen2", "ctypes", "code", "codeop", "pdb", "bdb",
    "timeit", "multiprocessing", "asyncio", "urllib", "urllib2", "http", "httplib", "requests", "ftplib",
    "smtplib", "telnetlib", "marshal", "pickle", "_pickle", "cPickle", "dill", "cloudpickle",
    "signal", "tempfile", "glob", "zipimport", "pkgutil", "distutils", "setuptools", "pip", "site",
)
DANGEROUS_NAMES = {
    "builtins": {"eval", "exec", "compile", "open", "__import__", "getattr", "setattr", "delattr", "globals",
                 "locals", "vars", "input", "breakpoint", "memoryview", "help", "exit", "quit"},
    "__builtin__": {"eval", "exec", "execfile", "compile", "open", "file", "__import__", "getattr", "setattr",
                    "delattr", "globals", "locals", "vars", "input", "raw_input", "apply", "reload"},
    "operator": {"attrgetter", "methodcaller", "itemgetter"},
    "functools": {"partial", "reduce"},
    "io": {"open", "FileIO", "open_code"},
    "_io": {"open", "FileIO", "open_code"},
    "platform": {"popen"},
    "types": {"FunctionType", "CodeType", "LambdaType", "MethodType", "ModuleType"},
    "torch": {"load"},
    "torch.serialization": {"load"},
    "torch.jit": {"load"},
    "torch.hub": {"load", "load_state_dict_from_url", "download_url_to_file"},
    "numpy": {"load", "fromfile"},
    "numpy.lib.npyio": {"load"},
    "numpy.testing._private.utils": {"runstring"},
    "pandas": {"read_pickle"},
    "joblib": {"load"},
}

_TORCH_REBUILDS = {"_rebuild_parameter", "_rebuild_parameter_with_state", "_rebuild_qtensor", "_rebuild_tensor",
                   "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_sparse_tensor",
                   "_rebuild_meta_tensor_no_storage", "_rebuild_nested_tensor", "_rebuild_wrapper_subclass",
                   "_rebuild_device_tensor_from_numpy", "_rebuild_device_tensor_from_cpu_tensor"}
_TORCH_DTYPES = {"float64", "float32", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz",
                 "float8_e5m2fnuz", "float8_e8m0fnu", "float4_e2m1fn_x2", "complex128", "complex64", "complex32",
                 "int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8", "bool", "qint8", "quint8",
                 "qint32", "quint4x2", "quint2x4", "bits8", "bits16", "bits1x8", "bits2x4", "bits4x2",
                 "double", "float", "half", "long", "int", "short", "cdouble", "cfloat", "chalf",
                 *(f"uint{i}" for i in range(1, 8)), *(f"int{i}" for i in range(1, 8)),
                 "per_tensor_affine", "per_channel_affine", "per_tensor_symmetric", "per_channel_symmetric",
                 "per_channel_affine_float_qparams", "strided", "sparse_coo", "sparse_csr", "_mkldnn"}

_NUMPY_SAFE = {f"{m}.{n}" for m in ("numpy.core.multiarray", "numpy._core.multiarray")
               for n in ("_reconstruct", "scalar")} | {
    f"{m}._frombuffer" for m in ("numpy.core.numeric", "numpy._core.numeric")} | {"numpy.ndarray", "numpy.dtype"}

_BUILTIN_SAFE = {"set", "frozenset", "slice", "complex", "bytearray", "list", "dict", "tuple", "int", "float", "str",
                 "bool", "bytes", "object", "range", "unicode", "long", "NoneType", "Ellipsis"}

_OTHER_SAFE = {"collections.OrderedDict", "collections.Counter", "collections.defaultdict", "collections.deque",
               "_codecs.encode", "codecs.encode", "copyreg._reconstructor", "copy_reg._reconstructor",
               "copyreg.__newobj__", "argparse.Namespace", "datetime.datetime", "datetime.date", "datetime.time",
               "datetime.timedelta", "datetime.timezone", "decimal.Decimal", "fractions.Fraction", "uuid.UUID",
               "pathlib.Path", "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.PurePosixPath",
               "pathlib.PureWindowsPath", "torch.Size", "torch.device", "torch.Tensor", "torch.nn.parameter.Parameter",
               "torch.storage.TypedStorage", "torch.storage.UntypedStorage", "torch.serialization._get_layout",
               "torch._tensor._rebuild_from_type_v2", "torch.storage._load_from_bytes", "torch.UntypedStorage",
               "torch.dtype", "torch.layout", "torch.memory_format", "torch.contiguous_format",
               "torch.channels_last", "torch.preserve_format",
               # TorchScript's pickle helpers (torch/jit/_pickle.py): each returns its argument
               "torch.jit._pickle.build_intlist", "torch.jit._pickle.build_doublelist",
               "torch.jit._pickle.build_boollist", "torch.jit._pickle.build_tensorlist",
               "torch.jit._pickle.build_tensor_from_id", "torch.jit._pickle.restore_type_tag",
               # torch.distributed.checkpoint .metadata: an Enum looked up by value (the DCP dataclasses
               # themselves are only instantiated from state, which S102 does not flag)
               "torch.distributed.checkpoint.metadata._MEM_FORMAT_ENCODING"}

# what torch 2.13's weights-only unpickler accepts without add_safe_globals (measured; approximate)
_WEIGHTS_ONLY_OTHER = {"collections.OrderedDict", "collections.Counter", "torch.nn.parameter.Parameter",
                       "torch.serialization._get_layout", "torch.Size", "torch.Tensor", "torch.device",
                       "_codecs.encode", "builtins.bytearray", "builtins.set", "builtins.complex",
                       "torch.storage.TypedStorage", "torch.storage.UntypedStorage", "torch._tensor._rebuild_from_type_v2"}
# opcodes the weights-only unpickler implements; anything else is "Unsupported operand N"
_WEIGHTS_ONLY_OPCODES = {"global", "newobj", "reduce", "build", "append", "appends", "setitem", "setitems", "mark",
                         "tuple", "tuple1", "tuple2", "tuple3", "none", "true", "false", "empty_tuple", "empty_list",
                         "empty_dict", "empty_set", "binint", "binint1", "binint2", "binfloat", "binunicode",
                         "short_binstring", "binpersid", "binget", "long_binget", "binput", "long_binput", "long1",
                         "proto", "stop", "additems"}
_OPCODE_NUMBERS = {"frame": 149, "memoize": 148, "stack_global": 147, "short_binunicode": 140, "binunicode8": 141,
                   "binbytes8": 142, "bytearray8": 150, "newobj_ex": 146, "frozenset": 145, "long4": 139,
                   "persid": 80, "binbytes": 66, "short_binbytes": 67, "put": 112, "get": 103, "int": 73, "long": 76, "string": 83, "unicode": 86,
                   "float": 70, "dict": 100, "list": 108, "inst": 105, "obj": 111, "pop": 48, "pop_mark": 49,
                   "dup": 50, "binstring": 84, "ext1": 130, "ext2": 131, "ext4": 132, "next_buffer": 151,
                   "readonly_buffer": 152}
TORCH_FORMATS = ("torch-zip", "torch-legacy")


def _in_module(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def as_loaded(g: GlobalRef) -> GlobalRef:
    """The global Python 3 actually imports: protocol 0-2 pickles from Python 2 name ``__builtin__.xrange``
    or ``copy_reg._reconstructor``, which ``pickle.load`` (fix_imports=True, the default) maps to
    ``builtins.range`` and ``copyreg._reconstructor``. Judged by that name, a Python 2 spelling neither
    hides a dangerous call nor makes a harmless one look unknown."""
    try:
        from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING
    except ImportError:  # pragma: no cover - CPython always has it
        return g
    mapped = NAME_MAPPING.get((g.module, g.name))
    if mapped is not None:
        return GlobalRef(*mapped)
    module = IMPORT_MAPPING.get(g.module)
    return GlobalRef(module, g.name) if module is not None else g


def is_dangerous(g: GlobalRef) -> bool:
    return any(_in_module(x.module, DANGEROUS_MODULES) or x.name in DANGEROUS_NAMES.get(x.module, ())
               for x in {g, as_loaded(g)})


def is_known_safe(g: GlobalRef) -> bool:
    loaded = as_loaded(g)
    if loaded != g and not is_dangerous(g) and _is_known_safe_name(loaded):
        return True
    return _is_known_safe_name(g)


def _is_known_safe_name(g: GlobalRef) -> bool:
    q = g.qualname
    if q in _OTHER_SAFE or q in _NUMPY_SAFE:
        return True
    if g.module in ("builtins", "__builtin__"):
        return g.name in _BUILTIN_SAFE
    if g.module == "torch._utils":
        return g.name in _TORCH_REBUILDS
    if g.module == "torch":
        return g.name in _TORCH_DTYPES or g.name.endswith(("Storage", "Tensor"))
    if g.module in ("torch.cuda", "torch.cuda.sparse", "torch.sparse"):
        return g.name.endswith(("Storage", "Tensor"))
    # numpy dtype classes; TorchScript classes (their code is inside the archive)
    return g.module == "numpy.dtypes" or g.module.startswith("__torch__")


def weights_only_allows(g: GlobalRef) -> bool:
    q = g.qualname
    if q in _WEIGHTS_ONLY_OTHER:
        return True
    if g.module == "torch._utils":
        return g.name in _TORCH_REBUILDS
    if g.module == "torch":
        return g.name in _TORCH_DTYPES or g.name.endswith(("Storage", "Tensor"))
    return g.module in ("torch.cuda",) and g.name.endswith(("Storage", "Tensor"))


def _uses(snap: Snapshot) -> dict[str, dict[str, Any]]:
    uses = snap.metadata.get("pickle_globals")
    return uses if isinstance(uses, dict) else {}


def _count(uses: dict[str, dict[str, Any]], g: GlobalRef) -> int:
    entry = uses.get(g.qualname) or {}
    return int(entry.get("count", 1) or 1)


def _instantiated_only(uses: dict[str, dict[str, Any]], g: GlobalRef) -> bool:
    entry = uses.get(g.qualname) or {}
    found = set(entry.get("uses", []))
    return "new" in found and "call" not in found


def _python_name(g: GlobalRef) -> str:
    """How the global is spelled in an add_safe_globals list (builtins are bare names)."""
    return g.name if g.module == "builtins" else g.qualname


@snapshot_check
def check_pickle_globals(snap: Snapshot) -> list[Diagnostic]:
    if not snap.globals:
        return []
    uses = _uses(snap)
    out: list[Diagnostic] = []
    dangerous = [g for g in snap.globals if is_dangerous(g)]
    for g in dangerous:
        n = _count(uses, g)
        called = "call" in set((uses.get(g.qualname) or {}).get("uses", []))
        action = "import and call" if called else "import"
        out.append(CODE_EXECUTION.diag(
            f"loading this file would {action} {g.qualname} (named {n} time{'s' if n != 1 else ''} in the pickle)",
            subject=g.qualname, found=g.qualname, path=snap.path,
            framework_behavior=("pickle.load / torch.load(weights_only=False) / np.load(allow_pickle=True) run it "
                                "while loading; torch.load(weights_only=True) refuses the file"),
            fix="do not unpickle this file; get the weights as safetensors, or read the tensors without "
                "unpickling (ckptdoctor inspect lists them)",
            details={"module": g.module, "name": g.name, "count": n},
        ))
    for g in snap.globals:
        if g in dangerous or is_known_safe(g) or _instantiated_only(uses, g):
            continue
        n = _count(uses, g)
        out.append(UNKNOWN_GLOBAL.diag(
            f"the pickle names {g.qualname}, which is not a known tensor/container rebuild function; loading "
            f"imports {g.module} and calls it",
            subject=g.qualname, found=g.qualname, path=snap.path,
            framework_behavior=_unknown_global_behavior(snap, g),
            fix="check what it is; save only tensors and plain data, or allowlist it if you trust the file",
            details={"count": n},
        ))
    return out


def _unknown_global_behavior(snap: Snapshot, g: GlobalRef) -> str:
    """What the loader a user would reach for does with this file's unknown global."""
    if snap.format in ("npy", "npz"):
        return (f"np.load(allow_pickle=True) imports {g.module} and calls {g.name}; with allow_pickle=False "
                "(the default) it refuses the array")
    if snap.format == "pickle" and snap.framework != "pytorch":
        return f"pickle.load imports {g.module} and calls {g.name}"
    return f"torch.load(weights_only=True): Unsupported global: GLOBAL {g.qualname}"


@snapshot_check
def check_weights_only(snap: Snapshot) -> list[Diagnostic]:
    fmt = snap.format
    if fmt == "torchscript":
        return [WEIGHTS_ONLY.diag(
            "this is a TorchScript archive (torch.jit.save): torch.load(weights_only=True) refuses it",
            subject=snap.path, path=snap.path, severity=Severity.INFO,
            framework_behavior="RuntimeError: Cannot use ``weights_only=True`` with TorchScript archives passed "
                               "to ``torch.load``",
            fix="load it with torch.jit.load(path); to get a state_dict: torch.jit.load(path).state_dict()",
        )]
    if fmt == "torch-tar":
        return [WEIGHTS_ONLY.diag(
            "torch <= 0.3 tar checkpoint: torch.load(weights_only=True) refuses this format",
            subject=snap.path, path=snap.path,
            framework_behavior="RuntimeError: Cannot use ``weights_only=True`` with files saved in the legacy "
                               ".tar format",
            fix="if you trust it, load once with weights_only=False and re-save with torch.save(state_dict)",
        )]
    if fmt == "pickle" and snap.framework == "pytorch" and snap.tensors:
        return [WEIGHTS_ONLY.diag(
            "this file was written by pickle.dump, not torch.save: torch.load cannot read it",
            subject=snap.path, path=snap.path,
            framework_behavior="torch.load(weights_only=True): Weights only load failed ... Unsupported global; "
                               "weights_only=False: Invalid magic number; corrupt file?",
            fix="load it with pickle.load only if you trust it, then torch.save(state_dict, path); tensors "
                "pickled this way go through torch.storage._load_from_bytes, i.e. a nested torch.load",
        )]
    if fmt not in TORCH_FORMATS:
        return []
    blocked = [g for g in snap.globals if not weights_only_allows(g)]
    opcodes = [o for o in snap.metadata.get("pickle_opcodes", []) if o not in _WEIGHTS_ONLY_OPCODES]
    if not blocked and not opcodes:
        return []
    dangerous = [g for g in blocked if is_dangerous(g)]
    allow = [g for g in blocked if not is_dangerous(g)]
    parts = []
    if blocked:
        first = blocked[0]
        parts.append(f"Unsupported global: GLOBAL {_python_name(first)} was not an allowed global by default"
                     + (f" (and {len(blocked) - 1} more)" if len(blocked) > 1 else ""))
    if opcodes:
        nums = ", ".join(f"{o} ({_OPCODE_NUMBERS.get(o, '?')})" for o in opcodes)
        parts.append(f"Unsupported operand: the pickle uses opcodes {nums} (pickle protocol "
                     f"{snap.metadata.get('pickle_protocol')})")
    fixes = []
    if allow:
        fixes.append(add_safe_globals_call(allow))
    if any(g.module.startswith("numpy.core") for g in allow):
        fixes.append("the file names numpy.core.* (saved with numpy < 2); under numpy >= 2 pass "
                     "(numpy._core.multiarray._reconstruct, \"numpy.core.multiarray._reconstruct\") pairs")
    if opcodes:
        fixes.append("re-save with torch.save (pickle protocol 2) instead of plain pickle")
    if dangerous:
        fixes.append("do NOT allowlist " + ", ".join(g.qualname for g in dangerous) + ": they run code")
    return [WEIGHTS_ONLY.diag(
        "torch.load(path) (weights_only=True, the default since torch 2.6) will refuse this file",
        subject=snap.path, path=snap.path,
        found=[g.qualname for g in blocked] + opcodes,
        framework_behavior="_pickle.UnpicklingError: Weights only load failed. ... " + "; ".join(parts),
        fix="; ".join(fixes) or "re-save with torch.save(model.state_dict(), path)",
        details={"globals": [g.qualname for g in blocked], "opcodes": opcodes},
    )]


def add_safe_globals_call(globals_: list[GlobalRef]) -> str:
    names = ", ".join(_python_name(g) for g in globals_)
    modules = sorted({g.module for g in globals_ if g.module not in ("builtins", "__main__")})
    imports = "; ".join(f"import {m}" for m in modules)
    main = [g.name for g in globals_ if g.module == "__main__"]
    lead = f"{imports}; " if imports else ""
    if main:
        lead += f"(define or import {', '.join(main)} in __main__ first) "
    return f"if you trust the file: {lead}torch.serialization.add_safe_globals([{names}])"


@snapshot_check
def check_pickled_classes(snap: Snapshot) -> list[Diagnostic]:
    out = []
    for c in snap.classes:
        if c.role != "pickled-class" or c.builtin:
            continue
        where = "the training script's __main__" if c.module == "__main__" else f"module {c.module}"
        behavior, fix = _pickled_class_story(snap, c.module, c.name)
        out.append(PICKLED_CLASS.diag(
            f"the file stores a {c.module}.{c.name} object at {c.path}; loading needs class {c.name} from {where}",
            subject=f"{c.module}.{c.name}", found=f"{c.module}.{c.name}", path=snap.path,
            framework_behavior=behavior, fix=fix,
        ))
    return out


def _pickled_class_story(snap: Snapshot, module: str, name: str) -> tuple[str, str]:
    """What loading does and the fix: torch's weights_only story for torch files, plain pickle's otherwise."""
    if snap.framework == "pytorch":
        return ((f"torch >= 2.6: Unsupported global: GLOBAL {module}.{name}; weights_only=False in a process "
                 f"without it: Can't get attribute '{name}' on <module '{module}'>"),
                ("save model.state_dict() instead of the object; to load this file, import the class under the "
                 f"same name and call torch.serialization.add_safe_globals([{name}])"))
    top = module.split(".", 1)[0]
    return ((f"pickle.load imports {module} and rebuilds the object; without it: ModuleNotFoundError: No module "
             f"named '{top}', or AttributeError: Can't get attribute '{name}' on <module '{module}'> when the "
             "class was renamed or moved"),
            (f"load it where {module} is importable at a compatible version (with the library's own load "
             "function, if it has one); to keep the data portable, save arrays and plain values (np.savez, JSON) "
             "instead of the object"))


@snapshot_check
def check_object_arrays(snap: Snapshot) -> list[Diagnostic]:
    arrays = snap.metadata.get("object_arrays") or []
    out = []
    for a in arrays:
        globals_ = a.get("globals") or []
        out.append(OBJECT_ARRAY.diag(
            f"array {a.get('name')!r} {a.get('shape')} has dtype object: it is a pickle"
            + (f" naming {', '.join(globals_)}" if globals_ else ""),
            subject=str(a.get("name")), path=snap.path, found="dtype object",
            framework_behavior="np.load: ValueError: Object arrays cannot be loaded when allow_pickle=False; "
                               "allow_pickle=True runs the pickle",
            fix="store numeric or fixed-width string arrays; load object arrays only from trusted sources",
        ))
    return out
