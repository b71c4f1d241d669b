"""transformers (W401-W499), peft and accelerate (W501-W599) messages.

Texts are from ``/work/shared/reference/torch-hf-messages.md`` (transformers 4.57 and 5.25, peft 0.20,
accelerate 1.15). These libraries are not installed here: tests use the verbatim texts.
"""

from __future__ import annotations

from ckptdoctor.catalog.model import Entry
from ckptdoctor.diagnostics import Severity

E, W, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO
PYLIST = r"\[[^\]]*\]"

ENTRIES: list[Entry] = [
    Entry(
        code="W401", name="transformers-weights-not-used", library="transformers",
        versions="transformers 4.x `from_pretrained` (warning, or info when the class is not the saved "
                 "architecture); accelerate load_checkpoint_in_model with strict=False",
        severity=W,
        summary="Checkpoint weights that the model class does not use were ignored.",
        patterns=(r"Some weights of the model checkpoint(?: at (?P<source>\S+?))? were not used when initializing "
                  r"(?P<model_class>\w+): (?P<names>" + PYLIST + r"|\{[^}]*\})",),
        meaning="{name_count} tensors in the checkpoint {source} are not part of {model_class} and were "
                "dropped: {names_preview}.",
        harmless="yes when you load a checkpoint into a model for another task (e.g. a pre-training head "
                 "into BertForSequenceClassification). No if you expected the identical architecture.",
        cause="A different head/task class, or a checkpoint of another architecture or version (renamed keys).",
        fix="Expected when changing heads. Otherwise load with the class in `config.architectures` and "
            "compare `model, info = Cls.from_pretrained(path, output_loading_info=True)`.",
        related=("unexpected-tensor",),
        examples=("Some weights of the model checkpoint at bert-base-uncased were not used when initializing "
                  "BertForSequenceClassification: ['cls.predictions.bias', 'cls.seq_relationship.weight']\n- This IS "
                  "expected if you are initializing BertForSequenceClassification from the checkpoint of a model "
                  "trained on another task or with another architecture.",
                  "Some weights of the model checkpoint at ./ckpt were not used when initializing MyModel: "
                  "{'lm_head.weight'}. This may or may not be an issue - make sure that the checkpoint does not "
                  "have unnecessary parameters, or that the model definition correctly corresponds to the "
                  "checkpoint."),
        derive=("key_list",), subject="{model_class}", found="name_list",
    ),
    Entry(
        code="W402", name="transformers-weights-newly-initialized", library="transformers",
        versions="transformers 4.x `from_pretrained`",
        severity=W,
        summary="Model weights missing from the checkpoint were randomly initialised.",
        patterns=(r"Some weights of (?P<model_class>\w+) were not initialized from the model checkpoint at "
                  r"(?P<source>\S+) and are newly initialized: (?P<names>" + PYLIST + r")",),
        meaning="{name_count} parameters of {model_class} are not in {source} and start random: "
                "{names_preview}.",
        harmless="expected for a new task head (classifier) that you will train; not for a model you expect to "
                 "be complete (then predictions are random).",
        cause="A task head not present in a base checkpoint, or renamed/missing keys.",
        fix="Fine-tune the model on your task, or load the class the checkpoint was saved with.",
        related=("missing-tensor",),
        examples=("Some weights of BertForSequenceClassification were not initialized from the model checkpoint "
                  "at bert-base-uncased and are newly initialized: ['classifier.bias', 'classifier.weight']\nYou "
                  "should probably TRAIN this model on a down-stream task to be able to use it for predictions "
                  "and inference.",),
        derive=("key_list",), subject="{model_class}", expected="name_list",
    ),
    Entry(
        code="W403", name="transformers-weights-reinitialized-shape", library="transformers",
        versions="transformers 4.x with ignore_mismatched_sizes=True; peft",
        severity=W,
        summary="Weights with a different shape were re-initialised (ignore_mismatched_sizes=True).",
        patterns=(r"Some weights of (?P<model_class>\w+) were not initialized from the model checkpoint at "
                  r"(?P<source>\S+) and are newly initialized because the shapes did not match",
                  r"Some weights of (?P<model_class>\w+) were not initialized from the model checkpoint and are "
                  r"being ignored because you passed `ignore_mismatched_sizes=True`"),
        details=(r"- (?P<key>\S+): found shape (?P<found_shape>torch\.Size\(\[[^\]]*\]\)) in the checkpoint and "
                 r"(?P<expected_shape>torch\.Size\(\[[^\]]*\])\)",),
        meaning="Tensors of {model_class} whose shapes differ from {source} were re-initialised, e.g. {key}: "
                "{shape_story}",
        harmless="expected when num_labels or vocabulary changed on purpose; those weights must be trained.",
        cause="A different number of labels or a resized vocabulary.",
        fix="Train the re-initialised layers, or build the config with the checkpoint's sizes.",
        related=("shape-mismatch",),
        examples=("Some weights of BertForSequenceClassification were not initialized from the model checkpoint "
                  "at ./ckpt and are newly initialized because the shapes did not match:\n- classifier.weight: "
                  "found shape torch.Size([2, 768]) in the checkpoint and torch.Size([5, 768]) in the model "
                  "instantiated\nYou should probably TRAIN this model on a down-stream task.",),
        derive=("shapes",), subject="{model_class}",
    ),
    Entry(
        code="W404", name="transformers-load-report", library="transformers",
        versions="transformers 5.x (`<Model> LOAD REPORT from: ...` table replaces the 4.x sentences)",
        severity=W,
        summary="transformers 5 LOAD REPORT: keys MISSING / UNEXPECTED / MISMATCH while loading.",
        patterns=(r"(?P<model_class>\w+) LOAD REPORT from: (?P<source>\S+)(?P<table>.{0,8000}?)(?:Notes:|$)",),
        meaning="Loading {model_class} from {source}: {report_counts}. {report_story}",
        harmless="UNEXPECTED: fine when the checkpoint is for another task. MISSING: those weights are random "
                 "(train them). MISMATCH: raises unless ignore_mismatched_sizes=True, then re-initialised.",
        cause="Same causes as in 4.x: another head/task, renamed keys, resized vocabulary or labels.",
        fix="Inspect `model, info = Cls.from_pretrained(path, output_loading_info=True)`; for deliberate "
            "size changes pass `ignore_mismatched_sizes=True` and train the re-initialised layers.",
        related=("missing-tensor", "unexpected-tensor", "shape-mismatch"),
        examples=("\x1b[1mBertForSequenceClassification LOAD REPORT\x1b[0m from: bert-base-uncased\n"
                  "Key                          | Status     | \n"
                  "-----------------------------+------------+-\n"
                  "cls.predictions.bias         | UNEXPECTED | \n"
                  "cls.seq_relationship.weight  | UNEXPECTED | \n"
                  "classifier.weight            | MISSING    | \n"
                  "classifier.bias              | MISSING    | \n\n"
                  "Notes:\n- UNEXPECTED:\tcan be ignored when loading from different task/architecture; not ok if "
                  "you expect identical arch.\n- MISSING:\tthose params were newly initialized because missing "
                  "from the checkpoint. Consider training on your downstream task.",),
        derive=("load_report",), subject="{model_class}",
    ),
    Entry(
        code="W405", name="transformers-mismatched-sizes-error", library="transformers",
        versions="transformers 4.x (hint appended to size mismatch errors) and 5.x (raises after the LOAD REPORT)",
        severity=E,
        summary="from_pretrained raised because tensor sizes differ; ignore_mismatched_sizes decides.",
        patterns=(r"You set `ignore_mismatched_sizes` to `False`, thus raising an error",
                  r"You may consider adding `ignore_mismatched_sizes=True` (?:in the model `from_pretrained` "
                  r"method|to `from_pretrained\(\.\.\.\)`)"),
        meaning="Some checkpoint tensors have other shapes than the model (see the size mismatch / MISMATCH "
                "rows).",
        harmless="no: the model is not loaded.",
        cause="num_labels, vocabulary size or another dimension differs from the checkpoint.",
        fix="    model = Cls.from_pretrained(path, num_labels=5, ignore_mismatched_sizes=True)\n"
            "then train the re-initialised layers; or match the checkpoint's config.",
        related=("shape-mismatch",),
        examples=("You set `ignore_mismatched_sizes` to `False`, thus raising an error. For details look at the "
                  "above report!",
                  "\n\tYou may consider adding `ignore_mismatched_sizes=True` in the model `from_pretrained` method."),
    ),
    Entry(
        code="W406", name="removed-shared-tensor", library="accelerate",
        versions="accelerate `clean_state_dict_for_safetensors` (today); transformers 4.35-4.39 save_pretrained",
        severity=W,
        summary="Saving to safetensors dropped aliases of shared (tied) tensors.",
        patterns=(r"Removed shared tensor (?P<names>\{[^}]*\}|\[[^\]]*\]) while saving",),
        meaning="{names_preview} shared storage with another tensor and was left out of the safetensors "
                "file; only the first name of each group is kept.",
        harmless="yes if the model re-ties these weights on load (tie_word_embeddings). Otherwise the "
                 "reloaded model has random values there ('newly initialized' / MISSING on reload).",
        cause="Tied weights (embedding and lm_head) or other aliasing saved with safe_serialization=True.",
        fix="Reload once and check for missing-key warnings; call `model.tie_weights()` after loading, or "
            "declare the tie in `_tied_weights_keys`; `safe_serialization=False` keeps aliases in a .bin.",
        related=("shared-storage", "missing-tensor"),
        examples=("Removed shared tensor {'lm_head.weight'} while saving. This should be OK, but check by "
                  "verifying that you don't receive any warning while reloading",
                  "WARNING - accelerate.utils.other - Removed shared tensor {'lm_head.weight'} while saving."),
        derive=("key_list",), subject="{names_preview}",
    ),
    Entry(
        code="W407", name="transformers-undeclared-shared-tensors", library="transformers",
        versions="transformers 4.4x-4.57 ('mismatching the transformers base configuration') and 5.x ('which "
                 "are not properly defined')",
        severity=E,
        summary="save_pretrained found tensor sharing that the model class does not declare.",
        patterns=(r"The weights trying to be saved contained shared tensors (?P<names>\[.*?\]) (?:that are "
                  r"mismatching the transformers base configuration|which are not properly defined)",),
        meaning="These tensors share memory but are not declared as tied in `_tied_weights_keys`: "
                "{names_preview}.",
        harmless="no: nothing is saved.",
        cause="Custom weight tying (or views) in a PreTrainedModel subclass.",
        fix="Declare the tie (`_tied_weights_keys = ['lm_head.weight']`), or clone to untie, or (4.x) "
            "`save_pretrained(path, safe_serialization=False)`.",
        related=("shared-storage",),
        examples=("RuntimeError: The weights trying to be saved contained shared tensors [{'a.weight', "
                  "'b.weight'}] that are mismatching the transformers base configuration. Try saving using "
                  "`safe_serialization=False`, setting the `_dynamic_tied_weights_keys` attribute for affected "
                  "modules, or remove this tensor sharing.",
                  "RuntimeError: The weights trying to be saved contained shared tensors [{'a.weight', "
                  "'b.weight'}] which are not properly defined. We found all the potential target tied weights "
                  "keys to be: ['lm_head.weight']."),
        derive=("key_list",),
    ),
    Entry(
        code="W408", name="transformers-generation-config-invalid", library="transformers",
        versions="transformers >= 4.3x GenerationConfig.save_pretrained (older 'The generation config instance is "
                 "invalid' wording; 5.x validates strictly only when modified)",
        severity=E,
        summary="save_pretrained refused an inconsistent generation config (e.g. temperature without do_sample).",
        patterns=(r"Fix these issues to save the configuration",),
        context=(r"`(?P<flag>\w+)` is (?:set to `False`|not set to `True`)\. However, `(?P<attribute>\w+)` is set "
                 r"to `(?P<value>[^`]+)`",
                 r"(?:GenerationConfig is invalid|The generation config instance is invalid)",),
        meaning="The generation config sets `{attribute}`={value} while `{flag}` is off, so `{attribute}` would "
                "have no effect; transformers refuses to save a contradictory config.",
        harmless="no: the save fails (the model weights may already be written).",
        cause="Sampling parameters (temperature, top_p, top_k) set with do_sample=False, often inherited from "
              "a published generation_config.json.",
        fix="Make it consistent before saving:\n"
            "    model.generation_config.do_sample = True\n"
            "or unset the sampling flags:\n"
            "    model.generation_config.temperature = None; model.generation_config.top_p = None",
        related=("incompatible-config",),
        examples=("ValueError: GenerationConfig is invalid: \n- `temperature`: `do_sample` is set to `False`. "
                  "However, `temperature` is set to `0.9` -- this flag is only used in sample-based generation "
                  "modes. You should set `do_sample=True` or unset `temperature`.\n\nFix these issues to save the "
                  "configuration.",
                  "ValueError: The generation config instance is invalid -- `.validate()` throws warnings and/or "
                  "exceptions. Fix these issues to save the configuration.\n\nThrown during validation:\n"
                  "[UserWarning('`do_sample` is set to `False`. However, `top_p` is set to `0.6`')]"),
        group_by=(),
    ),
    Entry(
        code="W409", name="transformers-generation-params-in-model-config", library="transformers",
        versions="transformers 4.4x-4.57 (save_pretrained UserWarnings)",
        severity=W,
        summary="Generation parameters were set in the model config instead of the generation config.",
        patterns=(r"Moving the following attributes in the config to the generation config: (?P<names>\{[^}]*\}|"
                  r"\[[^\]]*\])",
                  r"Some non-default generation parameters are set in the model config"),
        meaning="Generation settings ({names_preview}) live in `model.config`; transformers moves them to "
                "`generation_config` when saving.",
        harmless="yes today (the values are moved); it will become an error.",
        cause="`model.config.max_length = ...` or similar generation flags in config.json.",
        fix="Set them on `model.generation_config` (or a GenerationConfig file), not `model.config`.",
        related=("incompatible-config",),
        examples=("UserWarning: Moving the following attributes in the config to the generation config: "
                  "{'max_length': 64}. You are seeing this warning because you've set generation parameters in the "
                  "model config, as opposed to in the generation config.",
                  "UserWarning: Some non-default generation parameters are set in the model config. These should "
                  "go into either a) `model.generation_config` (as opposed to `model.config`); OR b) a "
                  "GenerationConfig file."),
        derive=("key_list",),
    ),
    Entry(
        code="W410", name="transformers-generation-config-from-model-config", library="transformers",
        versions="transformers 4.3x-4.40",
        severity=W,
        summary="The generation config was derived from a model config that changed since.",
        patterns=(r"Your generation config was originally created from the model config, but the model config has "
                  r"changed since then",),
        meaning="generate() will fall back to the legacy model-config parameters.",
        harmless="mostly; generation may not use the parameters you expect.",
        cause="Editing `model.config` generation fields after loading.",
        fix="Overwrite `model.generation_config` before `save_pretrained` and remove generation kwargs from "
            "the model config.",
        related=("incompatible-config",),
        examples=("Your generation config was originally created from the model config, but the model config has "
                  "changed since then. Unless you pass the `generation_config` argument to this model's `generate` "
                  "calls, they will revert to the legacy behavior.",),
    ),
    Entry(
        code="W411", name="transformers-git-lfs-missing", library="transformers",
        versions="transformers 4.x load_state_dict",
        severity=E,
        summary="The cloned model repository has git-lfs pointers instead of weights.",
        patterns=(r"You seem to have cloned a repository without having git-lfs installed",),
        meaning="The weight files are small git-lfs pointer texts.",
        harmless="no: nothing is loaded.",
        cause="`git clone` without git-lfs.",
        fix="    git lfs install && git lfs pull   # in the cloned folder",
        related=("git-lfs-pointer",),
        examples=("OSError: You seem to have cloned a repository without having git-lfs installed. Please install "
                  "git-lfs and run `git lfs install` followed by `git lfs pull` in the folder you cloned.",),
    ),
    Entry(
        code="W412", name="transformers-torch-load-vulnerability", library="transformers",
        versions="transformers >= 4.50 with torch < 2.6 loading .bin files",
        severity=E,
        summary="transformers refuses torch.load of .bin files on torch < 2.6 (CVE-2025-32434).",
        patterns=(r"Due to a serious vulnerability issue in `torch\.load`, even with `weights_only=True`, we now "
                  r"require users to upgrade torch to at least v2\.6",),
        meaning="Loading pickled `.bin` weights requires torch >= 2.6 in this transformers version.",
        harmless="no: nothing is loaded.",
        cause="torch < 2.6 and a checkpoint without safetensors files.",
        fix="Upgrade torch to >= 2.6, or use a `.safetensors` version of the checkpoint "
            "(`ckptdoctor convert FILE -o model.safetensors` converts without unpickling).",
        related=("code-execution", "pickle-global"),
        examples=("ValueError: Due to a serious vulnerability issue in `torch.load`, even with `weights_only=True`, "
                  "we now require users to upgrade torch to at least v2.6 in order to use the function. This "
                  "version restriction does not apply when loading files with safetensors.",),
    ),
    Entry(
        code="W413", name="transformers-renamed-parameters", library="transformers",
        versions="transformers 4.x (info_once); 5.x renames silently via conversion_mapping",
        severity=INFO,
        summary="Checkpoint keys such as LayerNorm.gamma/beta were renamed on load.",
        patterns=(r"A pretrained model of type `(?P<model_class>\w+)` contains parameters that have been renamed "
                  r"internally",),
        meaning="{model_class}'s checkpoint uses old names (gamma/beta, weight_g/weight_v); transformers maps "
                "them.",
        harmless="yes: the weights are loaded under the new names.",
        cause="An old checkpoint.",
        fix="Nothing; re-save with save_pretrained to store the new names.",
        related=("renamed-layer",),
        examples=("A pretrained model of type `BertModel` contains parameters that have been renamed internally "
                  "(a few are listed below but more are present in the model):\n* `bert.LayerNorm.gamma` -> "
                  "`bert.LayerNorm.weight`",),
        subject="{model_class}",
    ),
    Entry(
        code="W414", name="transformers-unable-to-load-weights", library="transformers",
        versions="transformers 4.x",
        severity=E,
        summary="transformers could not read a pytorch checkpoint file.",
        patterns=(r"Unable to load weights from pytorch checkpoint file for '(?P<path>[^']+)'",),
        meaning="'{path}' could not be read as a torch checkpoint.",
        harmless="no: nothing is loaded.",
        cause="A truncated or LFS-pointer file, a TF checkpoint (needs from_tf=True), or a torch version issue.",
        fix="`ckptdoctor inspect {path}` to see what the file is; re-download or pass `from_tf=True`.",
        related=("not-a-model-file", "truncated-file"),
        examples=("OSError: Unable to load weights from pytorch checkpoint file for './m/pytorch_model.bin' at "
                  "'./m/pytorch_model.bin'. If you tried to load a PyTorch model from a TF 2.0 checkpoint, please "
                  "set from_tf=True.",),
        subject="{path}",
    ),
    Entry(
        code="W415", name="transformers-adapter-keys", library="transformers",
        versions="transformers 4.57 integrations/peft.py (load_adapter)",
        severity=W,
        summary="Loading adapter weights found unexpected or missing keys.",
        patterns=(r"Loading adapter weights from (?P<source>\S+) led to (?P<kind>unexpected keys not found in the "
                  r"model|missing keys in the model): (?P<names>[^\n]{1,400}?)\.?(?:\s|$)",),
        meaning="Adapter {source}: {kind}: {names}.",
        harmless="no if LoRA keys are missing (those adapters are not applied).",
        cause="The adapter targets other modules or was trained on another base model/version.",
        fix="Check `target_modules` and the base model; load with the same base as training.",
        related=("missing-tensor", "unexpected-tensor"),
        examples=("Loading adapter weights from ./lora led to missing keys in the model: "
                  "base_model.model.layers.0.q_proj.lora_A.default.weight",),
        subject="{source}",
    ),
    # ---- peft ---------------------------------------------------------------------------------
    Entry(
        code="W501", name="peft-save-embedding-layers", library="peft",
        versions="peft (get_peft_model_state_dict, save_embedding_layers='auto')",
        severity=INFO,
        summary="peft saves the full embedding layers with the adapter (large adapter files).",
        patterns=(r"Setting `save_embedding_layers` to `True` as (?P<reason>embedding layers found in "
                  r"`target_modules`|the embedding layer has been resized during finetuning)",),
        meaning="Because {reason}, the complete base embedding / lm_head weights are written into "
                "adapter_model.safetensors (hundreds of MB to GB instead of a few MB).",
        harmless="yes: it is needed to restore resized or trained embeddings; only the size grows.",
        cause="`embed_tokens`/`lm_head` in target_modules, or `resize_token_embeddings` during fine-tuning.",
        fix="If the embeddings were not changed: `model.save_pretrained(path, save_embedding_layers=False)`; "
            "otherwise keep it (the adapter needs them).",
        related=("unsaved-state",),
        examples=("UserWarning: Setting `save_embedding_layers` to `True` as embedding layers found in "
                  "`target_modules`.",
                  "UserWarning: Setting `save_embedding_layers` to `True` as the embedding layer has been resized "
                  "during finetuning."),
    ),
    Entry(
        code="W502", name="peft-missing-adapter-keys", library="peft",
        versions="peft PeftModel.from_pretrained / load_adapter",
        severity=W,
        summary="The adapter file lacks keys for modules the adapter config targets.",
        patterns=(r"Found missing adapter keys while loading the checkpoint: (?P<names>" + PYLIST + r")",),
        meaning="{name_count} adapter weights are missing: {names_preview}; those modules keep fresh adapters.",
        harmless="no: part of the fine-tuning is not applied.",
        cause="Different target_modules, adapter name inside the key prefix, or another base model version.",
        fix="Check `adapter_config.json` target_modules against the file's keys; use the same adapter name and "
            "base model as in training.",
        related=("missing-tensor", "key-prefix"),
        examples=("UserWarning: Found missing adapter keys while loading the checkpoint: "
                  "['base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight'].",),
        derive=("key_list",),
    ),
    Entry(
        code="W503", name="peft-config-not-found", library="peft",
        versions="peft (offline or failed hub check while saving)",
        severity=INFO,
        summary="peft could not read the base config to check for a resized vocabulary.",
        patterns=(r"Could not find a config file in (?P<source>\S+) - will assume that the vocabulary was not "
                  r"modified",),
        meaning="The base model config {source} was not reachable, so peft assumes the vocabulary is unchanged "
                "and does not save embeddings.",
        harmless="yes unless you resized the embeddings (then the adapter misses them).",
        cause="Offline mode or a local base path that moved.",
        fix="If you resized embeddings, pass `save_embedding_layers=True`.",
        related=("unsaved-state",),
        examples=("UserWarning: Could not find a config file in meta-llama/Llama-2-7b-hf - will assume that the "
                  "vocabulary was not modified.",),
    ),
    Entry(
        code="W504", name="accelerate-weights-not-tied", library="accelerate",
        versions="accelerate infer_auto_device_map",
        severity=W,
        summary="Weights that should be tied are not tied before device-map inference.",
        patterns=(r"The model weights are not tied\. Please use the `tie_weights` method",),
        meaning="The tied parameters are separate tensors, so the device map counts and places them twice.",
        harmless="no: the output layer may not share the embedding after dispatch.",
        cause="A model built with init_empty_weights without tie_weights().",
        fix="    model.tie_weights()\n    device_map = infer_auto_device_map(model)",
        related=("shared-storage",),
        examples=("The model weights are not tied. Please use the `tie_weights` method before using the "
                  "`infer_auto_device` function.",),
    ),
    Entry(
        code="W505", name="accelerate-offload-folder-required", library="accelerate",
        versions="accelerate load_checkpoint_in_model / dispatch",
        severity=E,
        summary="Part of the model is offloaded to disk but no offload folder was given.",
        patterns=(r"At least one of the model submodule will be offloaded to disk, please pass along an "
                  r"`offload_folder`",),
        meaning="The device map puts some modules on 'disk'.",
        harmless="no: loading fails.",
        cause="Not enough GPU/CPU memory in the device map.",
        fix="    load_checkpoint_and_dispatch(model, path, device_map='auto', offload_folder='offload')",
        related=(),
        examples=("ValueError: At least one of the model submodule will be offloaded to disk, please pass along "
                  "an `offload_folder`.",),
    ),
]
