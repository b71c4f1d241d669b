"""``ckptdoctor demo``: the source article's three chatbot scenarios, reproduced and diagnosed.

Each scenario copies the article's code (``scripts/``) into the output folder, runs it the way a user
would (save, then load, showing what the framework itself prints), and then runs the ckptdoctor
commands a user would type to understand it. The steps are data; ``run_demo`` executes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Step:
    title: str
    argv: tuple[str, ...]  # "python" runs the demo interpreter; "ckptdoctor" runs this CLI
    log: str | None = None  # write the step's combined output to this file (for `explain`)
    expect_exit: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    claim: str
    reality: str
    script: str
    steps: tuple[Step, ...] = field(default_factory=tuple)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        key="1",
        title="Example 1: architecture discrepancy (Keras, LSTM 128 saved, LSTM 64 in the code)",
        claim="The article says load_model('chatbot_model_v1.h5') warns about the changed LSTM.",
        reality=("load_model rebuilds the model from the file's own config and never consults create_model_v2: "
                 "it loads LSTM(128) silently. The mismatch appears only with model_v2.load_weights(...), "
                 "as an error, and a model with one layer fewer loads .weights.h5 with no message at all."),
        script="example1_keras.py",
        steps=(
            Step("train and save v1 (.h5, .keras, .weights.h5)", ("python", "example1_keras.py", "save")),
            Step("load it the article's way, then the way that matters", ("python", "example1_keras.py", "load"),
                 log="example1_load.log"),
            Step("what is in the file", ("ckptdoctor", "inspect", "chatbot_model_v1.h5")),
            Step("the file against create_model_v2 (.weights.h5)",
                 ("ckptdoctor", "check", "chatbot_model_v1.weights.h5", "--model", "example1_keras.py:create_model_v2"),
                 expect_exit=(1,)),
            Step("the file against create_model_v2 (legacy .h5)",
                 ("ckptdoctor", "check", "chatbot_model_v1.h5", "--model", "example1_keras.py:create_model_v2"),
                 expect_exit=(1,)),
            Step("one layer fewer: Keras says nothing, ckptdoctor does",
                 ("ckptdoctor", "check", "chatbot_model_v1.weights.h5", "--model",
                  "example1_keras.py:create_model_v3_no_dense"), expect_exit=(1,)),
            Step("explain the log of the load attempts", ("ckptdoctor", "explain", "example1_load.log"),
                 expect_exit=(0, 1)),
        ),
    ),
    Scenario(
        key="2",
        title="Example 2: custom layer (PyTorch, CustomLinear missing from the loading code)",
        claim="The article says loading into ChatbotModel_No_Custom_Layer 'often produces a warning'.",
        reality=("load_state_dict is strict by default and raises 'Unexpected key(s) in state_dict'; with "
                 "strict=False the keys are dropped silently. The unused `fc` is saved anyway, and a whole-module "
                 "save cannot be loaded with torch 2.6+ defaults nor in a process without the class."),
        script="example2_torch.py",
        steps=(
            Step("train and save (state_dict and whole module)", ("python", "example2_torch.py", "save")),
            Step("load it the article's way", ("python", "example2_torch.py", "load"), log="example2_load.log"),
            Step("the state_dict against the model without CustomLinear",
                 ("ckptdoctor", "check", "chatbot_model_custom.pth", "--model",
                  "example2_torch.py:ChatbotModel_No_Custom_Layer"), expect_exit=(1,)),
            Step("if dropping CustomLinear is intended: a fixed copy, proven to load strictly",
                 ("ckptdoctor", "fix", "chatbot_model_custom.pth", "--model",
                  "example2_torch.py:ChatbotModel_No_Custom_Layer", "-o", "chatbot_model_fixed.pth", "--force")),
            Step("the whole-module pickle, read without executing it",
                 ("ckptdoctor", "inspect", "chatbot_model_whole.pth"), expect_exit=(0, 1)),
            Step("explain the log of the load attempts", ("ckptdoctor", "explain", "example2_load.log"),
                 expect_exit=(0, 1)),
            Step("save the whole module and reload it in a fresh process, as an inference server would",
                 ("ckptdoctor", "roundtrip", "--model", "example2_torch.py:ChatbotModel", "--save-as", "module"),
                 expect_exit=(1,)),
        ),
    ),
    Scenario(
        key="3",
        title="Example 3: dtypes and tensors outside the saved state",
        claim="The article blames implicit casts and torch.no_grad() for save warnings.",
        reality=("Keras float32 saves and loads silently; mixed_float16 stores float32 variables. torch casts a "
                 "float16 file into a float32 model silently. no_grad loses nothing: what loses state is a tensor "
                 "kept as a plain attribute, with no message."),
        script="example3_dtypes.py",
        steps=(
            Step("save the models", ("python", "example3_dtypes.py", "save")),
            Step("reload them", ("python", "example3_dtypes.py", "load"), log="example3_load.log"),
            Step("what mixed_float16 really stored", ("ckptdoctor", "inspect", "chatbot_model_mixed.keras"),
                 expect_exit=(0, 1)),
            Step("a float16 file against the float32 model",
                 ("ckptdoctor", "check", "small_net_fp16.pth", "--model", "example3_dtypes.py:SmallNet",
                  "--fail-on", "warning"), expect_exit=(0, 1)),
            Step("what a save of SmallNet loses", ("ckptdoctor", "lint", "--model", "example3_dtypes.py:SmallNet"),
                 expect_exit=(1,)),
        ),
    ),
)
