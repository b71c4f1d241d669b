"""PyTorch (W201-W299) and safetensors (W301-W399) messages.

Texts are from ``/work/shared/reference/torch-hf-messages.md`` and ``measured-behaviour.md`` (torch
2.13, safetensors 0.8). A space in a pattern means optional whitespace (see ``model.compile_pattern``).
"""

from __future__ import annotations

from ckptdoctor.catalog.model import Entry
from ckptdoctor.diagnostics import Severity

E, W, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO
KEYS = r"(?:\"[^\"]*\"(?:, )?)+"
WO_HEAD = r"Weights only load failed"
CLS_CTX = r"Error\(s\) in loading state_dict for (?P<model_class>[\w.]+):"

ENTRIES: list[Entry] = [
    Entry(
        code="W201", name="torch-missing-keys", library="torch",
        versions="all torch versions, `Module.load_state_dict(strict=True)`; safetensors `load_model` mirrors it",
        severity=E,
        summary="load_state_dict: the model has parameters/buffers the state dict does not contain.",
        patterns=(r"Missing key\(s\) in state_dict: (?P<missing>" + KEYS + r")\s?\.?(?: Unexpected key\(s\) in "
                  r"state_dict: (?P<unexpected>" + KEYS + r")\s?\.?)?",),
        context=(CLS_CTX,),
        meaning="{model_class} expects {missing_count} keys the checkpoint does not have ({missing_preview})"
                " and the checkpoint has {unexpected_count} keys the model does not know ({unexpected_preview}). "
                "{prefix_story}",
        harmless="no: with strict=True nothing is loaded; with strict=False the missing parameters keep "
                 "their random initial values, silently.",
        cause="The names differ: a wrapper prefix (`module.` from DataParallel/DDP, `_orig_mod.` from "
              "torch.compile), a renamed or removed submodule, a different architecture, or a buffer "
              "registered with persistent=False on one side.",
        framework="strict=True raises RuntimeError listing Missing first, then Unexpected, then size "
                  "mismatches. strict=False returns `_IncompatibleKeys(missing_keys, unexpected_keys)` and "
                  "loads the rest.",
        fix="Make the names match rather than silencing it. {prefix_story}\n"
            "    result = model.load_state_dict(sd, strict=False)\n"
            "    print(result.missing_keys, result.unexpected_keys)   # inspect before trusting strict=False\n"
            "`ckptdoctor check FILE --model file.py:Model` infers the key mapping.",
        related=("missing-tensor", "unexpected-tensor", "key-prefix", "renamed-layer"),
        examples=(
            'RuntimeError: Error(s) in loading state_dict for NetRenamed:\n\tMissing key(s) in state_dict: '
            '"head.weight", "head.bias". \n\tUnexpected key(s) in state_dict: "fc.weight", "fc.bias". ',
            'RuntimeError: Error(s) in loading state_dict for GPTModel:\n\tMissing key(s) in state_dict: '
            '"tok_emb.weight", "pos_emb.weight". \n\tUnexpected key(s) in state_dict: "_orig_mod.tok_emb.weight", '
            '"_orig_mod.pos_emb.weight". ',
        ),
        derive=("keys",), subject="{model_class}", expected="missing_keys", found="unexpected_keys",
    ),
    Entry(
        code="W202", name="torch-unexpected-keys", library="torch",
        versions="all torch versions, `Module.load_state_dict(strict=True)`",
        severity=E,
        summary="load_state_dict: the state dict has keys the model does not have.",
        patterns=(r"Unexpected key\(s\) in state_dict: (?P<unexpected>" + KEYS + r")\s?\.?",),
        context=(CLS_CTX,),
        meaning="The checkpoint has {unexpected_count} keys that {model_class} does not have: "
                "{unexpected_preview}.",
        harmless="no with strict=True (nothing loads). With strict=False these tensors are dropped silently, "
                 "which is fine only if you removed that part on purpose.",
        cause="The saved model had a submodule yours lacks (e.g. a custom layer removed, a training-only "
              "head), or a buffer that is non-persistent in your model.",
        framework="strict=True raises; strict=False ignores them.",
        fix="If the extra part is intentionally gone, drop those keys explicitly:\n"
            "    sd = {{k: v for k, v in sd.items() if k in model.state_dict()}}\n"
            "    model.load_state_dict(sd)\n"
            "otherwise build the model with that submodule.",
        related=("unexpected-tensor", "renamed-layer"),
        examples=('RuntimeError: Error(s) in loading state_dict for ChatbotModel_No_Custom_Layer:\n\tUnexpected '
                  'key(s) in state_dict: "custom_linear.weight", "custom_linear.bias". ',
                  'Unexpected key(s) in state_dict: "extra.weight". '),
        derive=("keys",), subject="{model_class}", found="unexpected_keys",
    ),
    Entry(
        code="W203", name="torch-size-mismatch", library="torch",
        versions="all torch versions; raised even with strict=False; transformers adds the "
                 "ignore_mismatched_sizes hint",
        severity=E,
        summary="load_state_dict: a tensor in the checkpoint has another shape than the model's parameter.",
        patterns=(r"size mismatch for (?P<key>[^:\s]+): copying a param with shape (?P<found_shape>torch\.Size\("
                  r"\[[^\]]*\]\)) from checkpoint, the shape in current model is (?P<expected_shape>torch\.Size\("
                  r"\[[^\]]*\]\))",),
        context=(CLS_CTX,),
        meaning="{key}: {shape_story}",
        harmless="no: load_state_dict raises (strict=False does not help).",
        cause="The model is built with other hyperparameters than the checkpoint (hidden size, vocabulary, "
              "number of labels, LoRA rank).",
        fix="Build the model with the checkpoint's sizes. For a changed vocabulary: "
            "`model.resize_token_embeddings(n)` before loading. With transformers, "
            "`from_pretrained(..., ignore_mismatched_sizes=True)` re-initialises those tensors (then train them).",
        related=("shape-mismatch",),
        examples=("RuntimeError: Error(s) in loading state_dict for Net:\n\tsize mismatch for lstm.weight_ih_l0: "
                  "copying a param with shape torch.Size([64, 8]) from checkpoint, the shape in current model is "
                  "torch.Size([128, 8]).",
                  "size mismatch for lm_head.weight: copying a param with shape torch.Size([32001, 4096]) from "
                  "checkpoint, the shape in current model is torch.Size([32000, 4096])."),
        derive=("shapes",), group_by=(), subject="{key}", expected="expected_shape", found="found_shape",
    ),
    Entry(
        code="W204", name="torch-load-weights-only-default-warning", library="torch",
        versions="torch 2.4 and 2.5 (FutureWarning on every torch.load without weights_only)",
        severity=W,
        summary="torch.load without weights_only: the default was about to flip to True (it did in 2.6).",
        patterns=(r"You are using `torch\.load` with `weights_only=False` \(the current default value\), which uses "
                  r"the default pickle module implicitly",),
        meaning="`torch.load` unpickles arbitrary objects by default in this version, which can execute code "
                "from the file. From torch 2.6 the default is `weights_only=True`, and files holding custom "
                "classes, numpy arrays or argparse Namespaces will fail to load.",
        harmless="yes today; it predicts a failure after upgrading torch, and untrusted files are unsafe.",
        cause="A `torch.load(path)` call without the `weights_only` argument.",
        fix="Say what you mean:\n"
            "    sd = torch.load(path, weights_only=True)     # tensors and plain containers only\n"
            "    ckpt = torch.load(path, weights_only=False)  # trusted files with custom objects",
        related=("pickle-global", "code-execution"),
        examples=("FutureWarning: You are using `torch.load` with `weights_only=False` (the current default value), "
                  "which uses the default pickle module implicitly. It is possible to construct malicious pickle "
                  "data which will execute arbitrary code during unpickling (See "
                  "https://github.com/pytorch/pytorch/blob/main/SECURITY.md#untrusted-models for more details). In "
                  "a future release, the default value for `weights_only` will be flipped to `True`.",),
    ),
    Entry(
        code="W205", name="torch-weights-only-unsupported-global", library="torch",
        versions="torch >= 2.6 (default weights_only=True); torch 2.4/2.5 with explicit weights_only=True; "
                 "early 2.6 builds printed the short name only",
        severity=E,
        summary="torch.load(weights_only=True) met a class/function it does not trust: 'Unsupported global'.",
        patterns=(r"Unsupported global: GLOBAL (?P<global>[\w.]+) was not an allowed global by default",),
        context=(WO_HEAD,),
        meaning="The checkpoint refers to `{global}`. {global_note}",
        harmless="no: nothing is loaded. The file is probably fine; torch refuses to run code from it.",
        cause="The checkpoint holds more than tensors: a whole pickled model (`torch.save(model)`), a config "
              "object, numpy arrays or scalars, an argparse Namespace, ...",
        framework="Since torch 2.6 `torch.load` defaults to `weights_only=True`, which only rebuilds tensors, "
                  "dicts, lists and primitive types plus what you allowlist.",
        fix="If you trust the file, allowlist exactly this global:\n"
            "    {allow_call}\n"
            "    sd = torch.load(path)\n"
            "(or `with torch.serialization.safe_globals([...]):`, or `weights_only=False` for a trusted file). "
            "`torch.serialization.get_unsafe_globals_in_checkpoint(path)` lists every global at once, and "
            "`ckptdoctor inspect FILE` lists them without loading. For the future, save "
            "`model.state_dict()` rather than the model object.",
        related=("pickle-global", "main-module-class"),
        examples=(
            "_pickle.UnpicklingError: Weights only load failed. This file can still be loaded, to do so you have "
            "two options, \x1b[1mdo those steps only if you trust the source of the checkpoint\x1b[0m. \n\t(1) In "
            "PyTorch 2.6, we changed the default value of the `weights_only` argument in `torch.load` from `False` "
            "to `True`. Re-running `torch.load` with `weights_only` set to `False` will likely succeed, but it can "
            "result in arbitrary code execution. Do it only if you got the file from a trusted source.\n\t(2) "
            "Alternatively, to load with `weights_only=True` please check the recommended steps in the following "
            "error message.\n\tWeightsUnpickler error: Unsupported global: GLOBAL __main__.Net was not an allowed "
            "global by default. Please use `torch.serialization.add_safe_globals([__main__.Net])` or the "
            "`torch.serialization.safe_globals([__main__.Net])` context manager to allowlist this global if you "
            "trust this class/function.\n\nCheck the documentation of torch.load to learn more about types "
            "accepted by default with weights_only https://pytorch.org/docs/stable/generated/torch.load.html.",
            "WeightsUnpickler error: Unsupported global: GLOBAL numpy.core.multiarray._reconstruct was not an "
            "allowed global by default. Please use `torch.serialization.add_safe_globals([numpy.core.multiarray."
            "_reconstruct])` or the `torch.serialization.safe_globals([numpy.core.multiarray._reconstruct])` "
            "context manager to allowlist this global if you trust this class/function.",
            "WeightsUnpickler error: Unsupported global: GLOBAL numpy._core.multiarray.scalar was not an allowed "
            "global by default. Please use `torch.serialization.add_safe_globals([scalar])` or the "
            "`torch.serialization.safe_globals([scalar])` context manager to allowlist this global if you trust "
            "this class/function.",
        ),
        derive=("torch_global",), group_by=("global",), subject="{global}", found="global",
    ),
    Entry(
        code="W206", name="torch-weights-only-unsupported-operand", library="torch",
        versions="torch >= 2.4 with weights_only=True (the default since 2.6)",
        severity=E,
        summary="torch.load(weights_only=True) met a byte it cannot read: often not a torch file at all.",
        patterns=(r"WeightsUnpickler error: ?Unsupported operand (?P<operand>\d+)",),
        context=(WO_HEAD,),
        meaning="Operand {operand}: {operand_meaning}.",
        harmless="no: nothing is loaded.",
        cause="A file that is not a torch.save checkpoint (git-lfs pointer, HTML page, HDF5, JSON), or a "
              "pickle written with protocol >= 4.",
        fix="Check what the file is: `ckptdoctor inspect FILE`. For a git-lfs pointer: `git lfs pull`. For "
            "an HTML page: download again with the direct link. For a protocol-4 pickle: re-save it with "
            "`torch.save` defaults, or load a trusted file with `weights_only=False`.",
        related=("not-a-model-file", "git-lfs-pointer", "html-page"),
        examples=("_pickle.UnpicklingError: Weights only load failed. Re-running `torch.load` with `weights_only` "
                  "set to `False` will likely succeed, but it can result in arbitrary code execution. Please file "
                  "an issue with the following so that we can make `weights_only=True` compatible with your use "
                  "case: WeightsUnpickler error: \n\nUnsupported operand 72",
                  "WeightsUnpickler error: Unsupported operand 149"),
        derive=("operand",), subject="operand {operand}",
    ),
    Entry(
        code="W207", name="torch-weights-only-blocked-module", library="torch",
        versions="torch >= 2.4 weights-only unpickler",
        severity=E,
        summary="The checkpoint calls into os/sys/posix/nt: torch refuses and it cannot be allowlisted.",
        patterns=(r"Trying to load unsupported GLOBAL (?P<global>[\w.]+) whose module (?P<module>[\w.]+) is blocked",),
        context=(WO_HEAD,),
        meaning="The file refers to `{global}` from the blocked module `{module}`: loading it the normal way "
                "would run operating-system calls.",
        harmless="no: treat the file as hostile unless you know why it contains this.",
        cause="A malicious or tampered checkpoint (or an object holding os/sys references).",
        fix="Do not load it with weights_only=False. Inspect it safely: `ckptdoctor inspect FILE` (no code "
            "runs) and get the weights from a trusted source.",
        related=("code-execution", "pickle-global"),
        examples=("WeightsUnpickler error: Trying to load unsupported GLOBAL posix.system whose module posix is "
                  "blocked.",),
        subject="{global}",
    ),
    Entry(
        code="W208", name="torch-weights-only-refused", library="torch",
        versions="torch >= 2.4 weights-only unpickler (NEWOBJ, REDUCE and BUILD refusals)",
        severity=E,
        summary="torch.load(weights_only=True) refused to build an object (NEWOBJ/REDUCE/BUILD).",
        patterns=(r"Can only create new object for nn\.Parameter or classes allowlisted via `add_safe_globals` but "
                  r"got (?P<object>[^\s.]+(?:\.[^\s.]+)*)",
                  r"Trying to call reduce for unrecognized function (?P<object>\S+)",
                  r"Can only build Tensor, Parameter, OrderedDict or types allowlisted via `add_safe_globals`, but "
                  r"got (?P<object>\S+)"),
        context=(WO_HEAD,),
        meaning="The checkpoint needs `{object}` to be created or called, which weights-only loading does not do.",
        harmless="no: nothing is loaded.",
        cause="Custom objects in the checkpoint (not just tensors).",
        fix="Allowlist the class (`torch.serialization.add_safe_globals([Cls])`) if you trust it, or "
            "re-save only tensors: `torch.save(model.state_dict(), path)`.",
        related=("pickle-global",),
        examples=("WeightsUnpickler error: Can only build Tensor, Parameter, OrderedDict or types allowlisted via "
                  "`add_safe_globals`, but got <class '__main__.Config'>",
                  "WeightsUnpickler error: Trying to call reduce for unrecognized function <function f at 0x7f>"),
        subject="{object}",
    ),
    Entry(
        code="W209", name="pickle-class-not-found-in-main", library="torch",
        versions="CPython pickle (torch.load with weights_only=False, pickle.load)",
        severity=E,
        summary="Unpickling needs a class that was defined in the training script's __main__.",
        patterns=(r"Can't get attribute '(?P<class_name>[^']+)' on <module '(?P<module>[^']+)'",),
        meaning="The file stores an object of class `{module}.{class_name}`; this process has no "
                "`{class_name}` in `{module}`.",
        harmless="no: nothing is loaded.",
        cause="`torch.save(model)` pickles the class by reference (module + name), not its code. The class "
              "lived in the training script (`__main__`), which the loading program is not.",
        framework="pickle imports `{module}` and looks up `{class_name}`; with torch >= 2.6 the default "
                  "weights_only=True fails earlier with 'Unsupported global: GLOBAL {module}.{class_name}'.",
        fix="Save and load state dicts, with the class in an importable module:\n"
            "    torch.save(model.state_dict(), 'chatbot.pt')            # training\n"
            "    from chatbot.models import {class_name}                 # inference\n"
            "    model = {class_name}(...); model.load_state_dict(torch.load('chatbot.pt'))\n"
            "For an existing trusted file: define or import `{class_name}` into `__main__` before "
            "`torch.load(path, weights_only=False)`.",
        related=("main-module-class", "pickle-global"),
        examples=("AttributeError: Can't get attribute 'Net' on <module '__main__' (built-in)>",
                  "AttributeError: Can't get attribute 'ChatbotModel' on <module '__main__' from '/srv/serve.py'>"),
        subject="{class_name}",
    ),
    Entry(
        code="W210", name="torch-cuda-checkpoint-on-cpu", library="torch",
        versions="all torch versions (device names vary: CUDA, MPS, XPU...)",
        severity=E,
        summary="The checkpoint's tensors were saved on a GPU that this machine does not have.",
        patterns=(r"Attempting to deserialize object on (?:a )?(?P<device>[A-Z]+) device(?: (?P<index>\d+))? but "
                  r"torch\.\w+\.(?:is_available\(\) is False|device_count\(\) is (?P<count>\d+))",),
        meaning="The tensors in the file are tagged with {device} device {index}; torch restores tensors "
                "to the device they were saved from unless told otherwise.",
        harmless="no: nothing is loaded, but the file is fine.",
        cause="A checkpoint saved from a GPU model loaded on a CPU-only machine (or one with fewer GPUs).",
        fix="Map the storages to an existing device:\n"
            "    sd = torch.load(path, map_location='cpu')\n"
            "To avoid it for everyone: save `{{k: v.cpu() for k, v in model.state_dict().items()}}`.",
        related=("device-location",),
        examples=("RuntimeError: Attempting to deserialize object on a CUDA device but torch.cuda.is_available() "
                  "is False. If you are running on a CPU-only machine, please use torch.load with "
                  "map_location=torch.device('cpu') to map your storages to the CPU.",
                  "RuntimeError: Attempting to deserialize object on CUDA device 1 but torch.cuda.device_count() is "
                  "1. Please use torch.load with map_location to map your storages to an existing device."),
        subject="{device}",
    ),
    Entry(
        code="W211", name="torch-rnn-weights-not-contiguous", library="torch",
        versions="torch with cuDNN/MIOpen (GPU only; the CPU wheel never prints it)",
        severity=INFO,
        summary="RNN weights are not in cuDNN's single flat buffer: slower, more memory, correct results.",
        patterns=(r"RNN module weights are not part of single contiguous chunk of memory",),
        meaning="The LSTM/GRU parameters no longer live in one flat cuDNN buffer, so they are copied together "
                "at every call.",
        harmless="yes for correctness: outputs are right; each forward costs extra memory and time.",
        cause="Parameters replaced after construction: `load_state_dict(assign=True)`, a whole-module "
              "torch.load, DataParallel replication, weight norm, or moving some parameters only.",
        fix="Re-flatten after loading or moving, or at the top of forward:\n"
            "    self.lstm.flatten_parameters()",
        related=("non-contiguous",),
        examples=("UserWarning: RNN module weights are not part of single contiguous chunk of memory. This means "
                  "they need to be compacted at every call, possibly greatly increasing memory usage. To compact "
                  "weights again call flatten_parameters().",),
    ),
    Entry(
        code="W212", name="torch-meta-parameter-not-loaded", library="torch",
        versions="torch >= 2.1 (UserWarning from _load_from_state_dict)",
        severity=W,
        summary="load_state_dict into a meta-device model copies nothing unless assign=True.",
        patterns=(r"for (?P<key>\S+): copying from a non-meta parameter in the checkpoint to a meta parameter in "
                  r"the current model, which is a no-op",),
        meaning="{key} lives on the meta device (no storage); copying into it does nothing, so the model has "
                "NO weights after this call.",
        harmless="no: the model is still empty.",
        cause="A model built under `torch.device('meta')` or accelerate's `init_empty_weights()`.",
        fix="    model.load_state_dict(sd, assign=True)   # adopt the checkpoint's tensors\n"
            "then create the optimizer after loading.",
        related=("silent-partial-load", "device-location"),
        examples=("UserWarning: for lstm.weight_ih_l0: copying from a non-meta parameter in the checkpoint to a "
                  "meta parameter in the current model, which is a no-op. (Did you mean to pass `assign=True` to "
                  "assign items in the state dictionary to their corresponding key in the module instead of "
                  "copying them in place?)",),
        group_by=(), subject="{key}",
    ),
    Entry(
        code="W213", name="torch-source-change-warning", library="torch",
        versions="torch legacy (pre-1.6, non-zip) whole-module checkpoints",
        severity=INFO,
        summary="A pickled module's class source changed since it was saved (legacy format).",
        patterns=(r"source code of class '(?P<class_name>[^']+)' has changed",),
        meaning="The file stored the source of `{class_name}` and it differs from the current code.",
        harmless="yes if the class is compatible (usually it is: whitespace or torch internals changed).",
        cause="An old whole-model checkpoint (torch < 1.6) loaded with newer code.",
        fix="Re-save as a state dict: `torch.save(model.state_dict(), 'model.pt')`.",
        related=("main-module-class",),
        examples=("SourceChangeWarning: source code of class 'torch.nn.modules.conv.Conv2d' has changed. you can "
                  "retrieve the original source code by accessing the object's source attribute or set "
                  "`torch.nn.Module.dump_patches = True` and use the patch tool to revert the changes.",),
        subject="{class_name}",
    ),
    Entry(
        code="W214", name="torch-source-not-retrievable", library="torch",
        versions="torch legacy format saves/loads (torch <= 1.5 default, or _use_new_zipfile_serialization=False)",
        severity=INFO,
        summary="The source of a pickled module class could not be read (notebook/REPL class).",
        patterns=(r"Couldn't retrieve source code for container of type (?P<class_name>\w+)",),
        meaning="`{class_name}` was defined where its source is not available (a notebook cell or REPL).",
        harmless="yes: only the source check on load is skipped.",
        cause="`torch.save(model)` in the legacy format with a class defined interactively.",
        fix="Save `model.state_dict()` instead of the module.",
        related=("main-module-class",),
        examples=("UserWarning: Couldn't retrieve source code for container of type MyNetwork. It won't be "
                  "checked for correctness upon loading.",),
        subject="{class_name}",
    ),
    Entry(
        code="W215", name="torch-load-torchscript-archive", library="torch",
        versions="torch >= 2.6 (error with weights_only=True; UserWarning dispatch with weights_only=False)",
        severity=E, as_warning=INFO,
        summary="torch.load was given a TorchScript archive (use torch.jit.load).",
        patterns=(r"Cannot use ``?weights_only=True``? with TorchScript archives passed to ``?torch\.load``?",
                  r"'torch\.load' received a zip file that looks like a TorchScript archive dispatching to "
                  r"'torch\.jit\.load'"),
        meaning="The file is a TorchScript archive (it has constants.pkl and code/), not a torch.save checkpoint.",
        harmless="no with weights_only=True (refused); with weights_only=False it is loaded via torch.jit.load.",
        cause="A model exported with `torch.jit.save`/`script` loaded with `torch.load`.",
        fix="    model = torch.jit.load(path, map_location='cpu')",
        related=("not-a-model-file",),
        examples=("RuntimeError: Cannot use ``weights_only=True`` with TorchScript archives passed to "
                  "``torch.load``. In PyTorch 2.6, we changed the default value of the `weights_only` argument.",
                  "UserWarning: 'torch.load' received a zip file that looks like a TorchScript archive dispatching "
                  "to 'torch.jit.load' (call 'torch.jit.load' directly to silence this warning)"),
    ),
    Entry(
        code="W216", name="torch-zip-central-directory", library="torch",
        versions="all torch versions (C++ PytorchStreamReader)",
        severity=E,
        summary="The checkpoint zip is truncated or corrupt.",
        patterns=(r"PytorchStreamReader failed reading zip archive: failed finding central directory",),
        meaning="The zip's central directory (at its end) is missing: the file is incomplete.",
        harmless="no: nothing is loaded.",
        cause="An interrupted download or copy, a save that crashed or ran out of disk.",
        fix="Download or save again; save through a temporary file and rename it.",
        related=("truncated-file",),
        examples=("RuntimeError: PytorchStreamReader failed reading zip archive: failed finding central directory",),
    ),
    Entry(
        code="W217", name="pickle-invalid-load-key", library="torch",
        versions="CPython pickle via torch.load(weights_only=False)",
        severity=E,
        summary="The file is not a pickle/torch checkpoint (git-lfs pointer 'v', HTML '<').",
        patterns=(r"invalid load key, '(?P<byte>[^']{1,6})'",),
        meaning="The first byte of the file is '{byte}': 'v' = a git-lfs pointer (`version https://git-lfs...`), "
                "'<' = an HTML page, other text = not a checkpoint.",
        harmless="no: nothing is loaded.",
        cause="The weights were never downloaded (git clone without git-lfs) or a web page was saved instead.",
        fix="`git lfs install && git lfs pull`, or download the file itself; check with `ckptdoctor inspect FILE`.",
        related=("git-lfs-pointer", "html-page", "not-a-model-file"),
        examples=("_pickle.UnpicklingError: invalid load key, 'v'.", "UnpicklingError: invalid load key, '<'."),
        subject="{byte}",
    ),
    Entry(
        code="W218", name="torch-state-dict-not-a-mapping", library="torch",
        versions="all torch versions",
        severity=E,
        summary="load_state_dict was given something that is not a dict (often a whole model).",
        patterns=(r"Expected state_dict to be dict-like, got (?P<type>[^.\s]+(?:\.[^.\s]+)*)",),
        meaning="`load_state_dict` received {type}.",
        harmless="no: nothing is loaded.",
        cause="The file holds a whole pickled module (`torch.save(model)`), so `torch.load` returned the model.",
        fix="Use the object directly, or `model.load_state_dict(loaded.state_dict())`; in future save "
            "`model.state_dict()`.",
        related=("main-module-class",),
        examples=("TypeError: Expected state_dict to be dict-like, got <class '__main__.Net'>.",),
        subject="{type}",
    ),
    Entry(
        code="W219", name="torch-pickle-protocol", library="torch",
        versions="torch >= 2.4 weights-only unpickler",
        severity=INFO,
        summary="The checkpoint uses a pickle protocol other than torch's default 2.",
        patterns=(r"Detected pickle protocol (?P<protocol>\d+) in the checkpoint, which was not the default pickle "
                  r"protocol used by `torch\.load`",),
        meaning="The pickle uses protocol {protocol}; the weights-only unpickler may not read all of it.",
        harmless="usually; it may be followed by 'Unsupported operand'.",
        cause="Saved with `pickle_protocol=` or by plain pickle.",
        fix="Re-save with `torch.save` defaults.",
        related=(),
        examples=("UserWarning: Detected pickle protocol 4 in the checkpoint, which was not the default pickle "
                  "protocol used by `torch.load` (2). The weights_only Unpickler might not support all "
                  "instructions implemented by this protocol, please file an issue for adding support if you "
                  "encounter this.",),
    ),
    Entry(
        code="W220", name="torch-force-no-weights-only", library="torch",
        versions="torch >= 2.6",
        severity=W,
        summary="TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD makes every torch.load unsafe.",
        patterns=(r"Environment variable TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD detected",),
        meaning="An environment variable forces `weights_only=False` for calls that did not pass it.",
        harmless="works, but every such load can execute code from the file.",
        cause="TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 in the environment.",
        fix="Unset it and pass `weights_only=False` only for the trusted files that need it.",
        related=("code-execution",),
        examples=("UserWarning: Environment variable TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD detected, since the"
                  "`weights_only` argument was not explicitly passed to `torch.load`, forcing weights_only=False.",),
    ),
    Entry(
        code="W221", name="pickle-cannot-pickle-object", library="torch",
        versions="CPython pickle via torch.save of whole objects",
        severity=E,
        summary="torch.save could not pickle an object (local class, lambda, redefined class).",
        patterns=(r"Can't pickle local object '(?P<object>[^']+)'",
                  r"Can't pickle (?P<object><function <lambda>[^>]*>|<class '[^']+'>): (?:attribute lookup|it's not "
                  r"the same object)"),
        meaning="`{object}` cannot be pickled by reference.",
        harmless="no: the save fails.",
        cause="A whole model/object saved that holds a lambda, a function or class defined inside a "
              "function, or a class redefined in a notebook after the instance was made.",
        fix="Save `model.state_dict()` (tensors only); move classes and functions to module level.",
        related=("unpicklable-object",),
        examples=("AttributeError: Can't pickle local object 'f.<locals>.Local'",
                  "PicklingError: Can't pickle <function <lambda> at 0x7f>: attribute lookup <lambda> on __main__ "
                  "failed"),
        subject="{object}",
    ),
    Entry(
        code="W222", name="torch-dcp-missing-key", library="torch",
        versions="torch.distributed.checkpoint DefaultLoadPlanner",
        severity=E,
        summary="A distributed checkpoint has no entry for a requested key.",
        patterns=(r"Missing key in checkpoint state_dict: (?P<key>[^\s]+?)\.?(?:\s|$)",),
        meaning="The DCP checkpoint has no `{key}`.",
        harmless="no: the load fails.",
        cause="Different model/optimizer structure, or `_orig_mod.` prefixes on one side.",
        fix="Load a subset, rename keys, or pass `allow_partial_load=True` to the planner when expected.",
        related=("missing-tensor", "key-prefix"),
        examples=("RuntimeError: Missing key in checkpoint state_dict: model.layers.0.attn.weight.",),
        subject="{key}",
    ),
    Entry(
        code="W223", name="torch-complex-to-real-cast", library="torch",
        versions="all torch versions (ATen copy_)",
        severity=W,
        summary="A complex tensor was copied into a real one: the imaginary part is lost.",
        patterns=(r"Casting complex values to real discards the imaginary part",),
        meaning="load_state_dict (copy_) cast a complex checkpoint tensor to the model's real dtype.",
        harmless="no: the imaginary part is dropped silently.",
        cause="dtype mismatch between checkpoint and model parameter.",
        fix="Make the parameter complex, or use `load_state_dict(sd, assign=True)` to keep the file's dtype.",
        related=("dtype-cast",),
        examples=("UserWarning: Casting complex values to real discards the imaginary part",),
    ),
    Entry(
        code="W224", name="torch-jit-load-not-torchscript", library="torch",
        versions="torch.jit.load",
        severity=E,
        summary="torch.jit.load was given a torch.save checkpoint (no constants.pkl).",
        patterns=(r"PytorchStreamReader failed locating file constants\.pkl: file not found",),
        meaning="The file is an ordinary torch.save zip, not a TorchScript archive.",
        harmless="no, but the file is fine.",
        cause="`torch.jit.load` used on a state-dict checkpoint.",
        fix="    sd = torch.load(path, map_location='cpu'); model.load_state_dict(sd)",
        related=("not-a-model-file",),
        examples=("RuntimeError: PytorchStreamReader failed locating file constants.pkl: file not found",),
    ),
    Entry(
        code="W225", name="torch-weights-only-must-import", library="torch",
        versions="torch >= 2.6",
        severity=E,
        summary="Loading DTensors or nested tensors needs a torch submodule imported first.",
        patterns=(r"``?(?P<module>torch\.[\w.]+)``?(?: and ``?torch\._dynamo``?)? must be imported to load "
                  r"(?P<what>DTensors|nested jagged tensors)",),
        meaning="The checkpoint holds {what}; `{module}` must be imported before torch.load.",
        harmless="no, but easily fixed.",
        cause="A distributed or nested-tensor checkpoint loaded in a process that did not import the module.",
        fix="    import {module}\n    sd = torch.load(path)",
        related=(),
        examples=("UnpicklingError: Weights only load failed. ``torch.distributed.tensor`` must be imported to "
                  "load DTensors",),
        subject="{module}",
    ),
    # ---- safetensors --------------------------------------------------------------------------
    Entry(
        code="W301", name="safetensors-shared-tensors", library="safetensors",
        versions="safetensors save_file/save (all versions; RuntimeError)",
        severity=E,
        summary="save_file refuses tensors that share memory (tied weights, views).",
        patterns=(r"Some tensors share memory, this will lead to duplicate memory on disk and potential "
                  r"differences when loading them again: (?P<names>\[.*?\])\.?.{0,12}?A potential way",),
        meaning="These tensors share storage: {names}. safetensors stores each name separately and cannot "
                "express the sharing.",
        harmless="no: nothing is saved.",
        cause="Tied weights (embedding and output layer, e.g. {names}) or views/slices of one tensor in the "
              "state dict.",
        framework="`save_file` raises; `save_model` keeps one name per shared group and records the others "
                  "in the metadata, and `load_model` re-ties them.",
        fix="    from safetensors.torch import save_model, load_model\n"
            "    save_model(model, 'model.safetensors')\n"
            "    load_model(model, 'model.safetensors')\n"
            "(`load_state_dict(load_file(...))` then reports the dropped alias as a missing key). Or clone: "
            "`save_file({{k: v.clone().contiguous() for k, v in sd.items()}}, path)`, which unties them.",
        related=("shared-storage",),
        examples=("RuntimeError: \n            Some tensors share memory, this will lead to duplicate memory on disk "
                  "and potential differences when loading them again: [{'emb.weight', 'out.weight'}].\n            "
                  "A potential way to correctly save your model is to use `save_model`.\n            More "
                  "information at https://huggingface.co/docs/safetensors/torch_shared_tensors",),
        derive=("key_list",), subject="{names_preview}",
    ),
    Entry(
        code="W302", name="safetensors-non-contiguous", library="safetensors",
        versions="safetensors save_file/save (ValueError)",
        severity=E,
        summary="save_file refuses a non-contiguous tensor (a transposed or sliced view).",
        patterns=(r"You are trying to save a non contiguous tensor: `(?P<key>[^`]+)` which is not allowed",),
        meaning="`{key}` is a strided view (transpose, slice, expand): its bytes are not laid out in order.",
        harmless="no: nothing is saved.",
        cause="A tensor stored as `.T`, `x[:, ::2]` or an LSTM weight replaced by a view.",
        fix="    save_file({{k: v.contiguous() for k, v in sd.items()}}, 'model.safetensors')\n"
            "or `save_model(model, path)` (force_contiguous=True by default).",
        related=("non-contiguous",),
        examples=("ValueError: You are trying to save a non contiguous tensor: `x` which is not allowed. It either "
                  "means you are trying to save tensors which are reference of each other in which case it's "
                  "recommended to save only the full tensors, and reslice at load time, or simply call "
                  "`.contiguous()` on your tensor to pack it before saving.",),
        subject="{key}",
    ),
    Entry(
        code="W303", name="safetensors-header-too-large", library="safetensors",
        versions="safetensors ('header too large'; older releases print HeaderTooLarge)",
        severity=E,
        summary="The file is not a safetensors file (git-lfs pointer, HTML page, a torch .pt).",
        patterns=(r"Error while deserializing header: (?:HeaderTooLarge|header too large)",),
        meaning="The first 8 bytes, read as the header length, give an absurd size: the file is not safetensors.",
        harmless="no: nothing is loaded.",
        cause="A git-lfs pointer, an HTML page, or a different format (a torch zip) under a .safetensors name.",
        fix="`ckptdoctor inspect FILE` says what it is; `git lfs pull` or download it again.",
        related=("git-lfs-pointer", "html-page", "not-a-model-file", "corrupt-header"),
        examples=("SafetensorError: Error while deserializing header: header too large",
                  "safetensors_rust.SafetensorError: Error while deserializing header: HeaderTooLarge"),
    ),
    Entry(
        code="W304", name="safetensors-incomplete-file", library="safetensors",
        versions="safetensors ('incomplete metadata, file not fully covered'; older: MetadataIncompleteBuffer)",
        severity=E,
        summary="The safetensors file is shorter than its header says (truncated).",
        patterns=(r"Error while deserializing header: (?:MetadataIncompleteBuffer|incomplete metadata, file not "
                  r"fully covered)",),
        meaning="The header describes more data than the file holds.",
        harmless="no: nothing is loaded.",
        cause="An interrupted download or save.",
        fix="Download or save it again.",
        related=("truncated-file",),
        examples=("SafetensorError: Error while deserializing header: incomplete metadata, file not fully covered",
                  "SafetensorError: Error while deserializing header: MetadataIncompleteBuffer"),
    ),
    Entry(
        code="W305", name="safetensors-invalid-value", library="safetensors",
        versions="safetensors save_file",
        severity=E,
        summary="save_file got a value that is not a tensor (or a sparse tensor).",
        patterns=(r"Key `(?P<key>[^`]+)` is invalid, expected torch\.Tensor but received (?P<type><class '[^']+'>)",
                  r"You are trying to save a sparse tensors?: `(?P<key>[^`]+)` which this library does not support"),
        meaning="`{key}` is not a dense tensor ({type}).",
        harmless="no: nothing is saved.",
        cause="A training checkpoint dict (epoch numbers, optimizer state) or sparse tensors given to save_file.",
        fix="Save only dense tensors: `{{k: v.to_dense() for k, v in sd.items() if torch.is_tensor(v)}}`; keep "
            "other values in the string metadata or a JSON file.",
        related=("unsaved-state",),
        examples=("ValueError: Key `b` is invalid, expected torch.Tensor but received <class 'int'>",
                  "ValueError: You are trying to save a sparse tensors: `['a']` which this library does not "
                  "support."),
        subject="{key}",
    ),
    Entry(
        code="W306", name="safetensors-no-covering-name", library="safetensors",
        versions="safetensors save_model/load_model",
        severity=E,
        summary="save_model found shared tensors where no name covers the whole storage.",
        patterns=(r"found no suitable name to keep for saving amongst: (?P<names>\{[^}]*\})",),
        meaning="The tensors {names} share one storage, but none spans all of it, so no single name can be "
                "kept.",
        harmless="no: nothing is saved.",
        cause="Views/slices of a larger buffer in the state dict.",
        fix="Clone the views: `{{k: v.clone() for k, v in sd.items()}}` then `save_file`.",
        related=("shared-storage",),
        examples=("RuntimeError: Error while trying to find names to remove to save state dict, but found no "
                  "suitable name to keep for saving amongst: {'a', 'b'}. None is covering the entire storage.",),
    ),
    Entry(
        code="W307", name="safetensors-missing-format-metadata", library="safetensors",
        versions="accelerate (warning, defaults to 'pt'); transformers 4.57 (error for an unknown format)",
        severity=W,
        summary="A safetensors file without (valid) `format` metadata.",
        patterns=(r"The safetensors archive passed at (?P<path>\S+) does not contain (?:the valid )?metadata",),
        meaning="'{path}' was not written by save_pretrained (no `{{'format': 'pt'}}` in __metadata__).",
        harmless="usually yes with accelerate (assumes 'pt'); transformers 4.57 refuses unknown formats.",
        cause="A file written with plain `save_file` without metadata.",
        fix="    save_file(sd, path, metadata={{'format': 'pt'}})",
        related=("corrupt-header",),
        examples=("The safetensors archive passed at model.safetensors does not contain metadata. Make sure to save "
                  "your model with the `save_pretrained` method. Defaulting to 'pt' metadata.",),
        subject="{path}",
    ),
]
