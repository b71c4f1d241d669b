"""The article's `torch.no_grad()` claim, measured.

The article says that creating part of a model under `torch.no_grad()` "detaches" it so that it is not
part of the parameter list, and the save warns or loses it. It does not: parameters and buffers created
under `no_grad` are registered like any other and saved. What really loses state without any warning
is a tensor kept as a plain attribute (not `nn.Parameter`, not `register_buffer`).

    python examples/article/no_grad_chatbot.py      # round-trips both models in a fresh process
"""

from __future__ import annotations

import torch
from torch import nn


class NoGradChatbot(nn.Module):
    """Part of the model is created and initialised under torch.no_grad(): nothing is lost."""

    def __init__(self, vocab_size: int = 100, embedding_dim: int = 16, hidden_size: int = 32) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, batch_first=True)
        with torch.no_grad():
            self.head = nn.Linear(hidden_size, 2)
            self.head.weight.copy_(torch.linspace(-1, 1, 2 * hidden_size).reshape(2, hidden_size))
            self.register_buffer("temperature", torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embedding(x))
        return self.head(out[:, -1, :]) / self.temperature


class PlainAttributeChatbot(nn.Module):
    """The temperature is a plain tensor attribute: it is not in state_dict(), so it is lost."""

    def __init__(self, vocab_size: int = 100, embedding_dim: int = 16, hidden_size: int = 32) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, 2)
        self.temperature = torch.ones(1)  # D101: not a Parameter, not a buffer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embedding(x))
        return self.head(out[:, -1, :]) / self.temperature


def calibrate(model: nn.Module) -> nn.Module:
    """Stand-in for training: one optimiser step and a calibrated temperature, all under the same rules."""
    torch.manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randint(0, 100, (4, 8))
    loss = model(x).pow(2).mean()
    loss.backward()
    opt.step()
    with torch.no_grad():
        model.temperature.fill_(2.5)
    return model


def main() -> int:
    from ckptdoctor.roundtripping import roundtrip

    worst = 0
    for cls in (NoGradChatbot, PlainAttributeChatbot):
        report = roundtrip(calibrate(cls()))
        print(report.render())
        worst = max(worst, 0 if report.ok else 1)
    return worst


if __name__ == "__main__":
    raise SystemExit(main())
