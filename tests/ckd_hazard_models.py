"""Real torch models with one save hazard each, and their clean twins (tests of lint and roundtrip).

They live in an importable module, as a project's models would, so the fresh roundtrip process can
import them the way an inference program does.
"""

from __future__ import annotations

import torch
from torch import nn


class Clean(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 6)
        self.blocks = nn.ModuleList([nn.Linear(6, 6) for _ in range(2)])
        self.out = nn.Linear(6, 3)
        self.register_buffer("scale", torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.emb(x).mean(1)
        for block in self.blocks:
            h = torch.relu(block(h))
        return self.out(h) * self.scale


class LosesState(nn.Module):
    """Plain tensor attribute, a non-persistent buffer and modules in a plain list: all lost on save."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 6)
        self.blocks = [nn.Linear(6, 6) for _ in range(2)]  # D103
        self.out = nn.Linear(6, 3)
        self.scale = torch.ones(3)  # D101
        self.register_buffer("counts", torch.zeros(3), persistent=False)  # D102

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.emb(x).mean(1)
        for block in self.blocks:
            h = torch.relu(block(h))
        return self.out(h) * self.scale + self.counts


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 6)
        self.out = nn.Linear(6, 20, bias=False)
        self.out.weight = self.emb.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.emb(x))


class Views(nn.Module):
    """A buffer that is a view of a 100-element storage, and a transposed (non-contiguous) parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.arange(100.0)[10:20])
        self.proj = nn.Parameter(torch.randn(3, 5).t())


class MixedDtypes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4).half()


class HoldsLambda(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 2)
        self.act = lambda t: t * 2


def make_local_model() -> nn.Module:
    class Local(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 2)

    return Local()


class IntBuffer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.register_buffer("ids", torch.zeros(3, dtype=torch.long))


# -- the article's Example 2 ----------------------------------------------------------------------

class CustomLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.randn(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x, self.weight.T) + self.bias


class ChatbotModel(nn.Module):
    def __init__(self, vocab_size: int = 1000, embedding_dim: int = 64, hidden_size: int = 128) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_size)
        self.custom_linear = CustomLinear(hidden_size, 2)
        self.fc = nn.Linear(hidden_size, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embedded = self.embedding(x)
        lstm_out, _ = self.lstm(embedded)
        return self.custom_linear(lstm_out[:, -1, :])


class ChatbotModelNoCustomLayer(nn.Module):
    """The article's loading-side model: CustomLinear is missing."""

    def __init__(self, vocab_size: int = 1000, embedding_dim: int = 64, hidden_size: int = 128) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_size)
        self.fc = nn.Linear(hidden_size, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embedded = self.embedding(x)
        lstm_out, _ = self.lstm(embedded)
        return self.fc(lstm_out[:, -1, :])


def small_chatbot() -> ChatbotModel:
    return ChatbotModel(100, 8, 16)


def small_chatbot_without_custom_layer() -> ChatbotModelNoCustomLayer:
    return ChatbotModelNoCustomLayer(100, 8, 16)


def train_a_little(model: nn.Module) -> nn.Module:
    """Change every value a save should keep (and the ones it will not), as training would."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        for name in ("scale", "counts"):
            t = getattr(model, name, None)
            if isinstance(t, torch.Tensor):
                t.add_(1.5)
        for block in getattr(model, "blocks", []):
            for p in block.parameters():
                p.add_(0.25)
    return model
