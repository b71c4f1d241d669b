"""Tiny Hugging Face-like torch models and a ``save_pretrained`` look-alike, without transformers.

The module tree and key names follow transformers' Llama (``model.embed_tokens``,
``model.layers.N.self_attn.q_proj``, ``model.norm``, ``lm_head``, a non-persistent ``inv_freq``), and
``save_hf_folder`` writes what ``save_pretrained`` writes: ``config.json``, then ``model.safetensors`` or
``model-0000N-of-0000M.safetensors`` shards + ``model.safetensors.index.json`` (``metadata.total_size``,
``weight_map``, ``json.dumps(indent=2, sort_keys=True)``), with ``{"format": "pt"}`` shard metadata and the
tied ``lm_head.weight`` dropped when ``tie_word_embeddings`` is true.
"""

from __future__ import annotations

import json
import os
from typing import ClassVar

import torch
from torch import nn

VOCAB, HIDDEN, LAYERS = 32, 8, 2


class RMSNorm(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))


class Rotary(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.register_buffer("inv_freq", torch.ones(hidden // 2), persistent=False)


class Attention(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            setattr(self, name, nn.Linear(hidden, hidden, bias=False))


class MLP(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden, 2 * hidden, bias=False)
        self.up_proj = nn.Linear(hidden, 2 * hidden, bias=False)
        self.down_proj = nn.Linear(2 * hidden, hidden, bias=False)


class DecoderLayer(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.self_attn = Attention(hidden)
        self.mlp = MLP(hidden)
        self.input_layernorm = RMSNorm(hidden)
        self.post_attention_layernorm = RMSNorm(hidden)


class TinyLlamaModel(nn.Module):
    """The bare backbone (``LlamaModel``): keys ``embed_tokens.weight``, ``layers.0...``."""

    def __init__(self, vocab_size: int = VOCAB, hidden: int = HIDDEN, layers: int = LAYERS) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab_size, hidden)
        self.layers = nn.ModuleList(DecoderLayer(hidden) for _ in range(layers))
        self.norm = RMSNorm(hidden)
        self.rotary_emb = Rotary(hidden)


class TinyLlamaForCausalLM(nn.Module):
    """The task model (``LlamaForCausalLM``): the backbone under ``model.``, and ``lm_head`` tied to the
    input embedding when ``tie_word_embeddings`` (as ``PreTrainedModel.tie_weights`` does)."""

    _tied_weights_keys: ClassVar[list[str]] = ["lm_head.weight"]

    def __init__(self, vocab_size: int = VOCAB, hidden: int = HIDDEN, layers: int = LAYERS,
                 tie_word_embeddings: bool = True) -> None:
        super().__init__()
        self.model = TinyLlamaModel(vocab_size, hidden, layers)
        self.lm_head = nn.Linear(hidden, vocab_size, bias=False)
        self.tie_word_embeddings = tie_word_embeddings
        if tie_word_embeddings:
            self.tie_weights()

    def tie_weights(self) -> None:
        self.lm_head.weight = self.model.embed_tokens.weight

    def resize_token_embeddings(self, new_num_tokens: int) -> None:
        """transformers' resize: new embedding rows (and head rows), the old ones kept, ties restored."""
        old = self.model.embed_tokens
        emb = nn.Embedding(new_num_tokens, old.embedding_dim, device=old.weight.device)
        n = min(new_num_tokens, old.num_embeddings)
        with torch.no_grad():
            if old.weight.device.type != "meta":
                emb.weight[:n] = old.weight[:n]
        self.model.embed_tokens = emb
        head = nn.Linear(old.embedding_dim, new_num_tokens, bias=False, device=old.weight.device)
        self.lm_head = head
        if self.tie_word_embeddings:
            self.tie_weights()


def untied_causal_lm(**kwargs: object) -> TinyLlamaForCausalLM:
    """A re-implementation that forgets to tie the head."""
    return TinyLlamaForCausalLM(tie_word_embeddings=False, **kwargs)  # type: ignore[arg-type]


def config_for(model: TinyLlamaForCausalLM | TinyLlamaModel, tie: bool | None = True) -> dict[str, object]:
    cfg: dict[str, object] = {
        "architectures": [type(model).__name__.replace("Tiny", "")], "model_type": "llama",
        "hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "torch_dtype": "float32",
        "transformers_version": "4.57.1",
        "vocab_size": (model.model if hasattr(model, "model") else model).embed_tokens.num_embeddings,
    }
    if tie is not None:  # absent: PretrainedConfig's default, True
        cfg["tie_word_embeddings"] = tie
    return cfg


def save_hf_folder(model: nn.Module, folder: str, *, shards: int = 1, tie: bool | None = True) -> str:
    """Write ``folder`` as ``model.save_pretrained(folder)`` would (safetensors)."""
    from safetensors.torch import save_file

    os.makedirs(folder, exist_ok=True)
    sd = model.state_dict()
    if tie is None or tie:
        for key in getattr(model, "_tied_weights_keys", []):
            sd.pop(key, None)
    sd = {k: v.detach().clone().contiguous() for k, v in sd.items()}  # no shared storage left
    with open(os.path.join(folder, "config.json"), "w") as fh:
        fh.write(json.dumps(config_for(model, tie), indent=2, sort_keys=True) + "\n")
    if shards == 1:
        save_file(sd, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
        return folder
    keys = list(sd)
    per = -(-len(keys) // shards)
    weight_map: dict[str, str] = {}
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: sd[k] for k in keys[i * per:(i + 1) * per]}
        save_file(part, os.path.join(folder, name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, name))
    index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in sd.values())},
             "weight_map": weight_map}
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as fh:
        fh.write(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return folder


def load_hf_folder(folder: str) -> dict[str, torch.Tensor]:
    """The state dict from_pretrained reads: every shard of the index, or model.safetensors."""
    from safetensors.torch import load_file

    index = os.path.join(folder, "model.safetensors.index.json")
    if not os.path.exists(index):
        return load_file(os.path.join(folder, "model.safetensors"))
    with open(index) as fh:
        shards = sorted(set(json.load(fh)["weight_map"].values()))
    sd: dict[str, torch.Tensor] = {}
    for shard in shards:
        sd.update(load_file(os.path.join(folder, shard)))
    return sd
