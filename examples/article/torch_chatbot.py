"""The article's Example 2 (PyTorch), as importable code.

``ChatbotModel`` is saved with its ``custom_linear`` layer (and the unused ``fc``, which is saved
anyway: every registered submodule is part of ``state_dict()``, used in ``forward`` or not).
``ChatbotModel_No_Custom_Layer`` is the changed code that tries to load it.

    python examples/article/torch_chatbot.py out_dir      # writes chatbot_model_custom.pth
    ckptdoctor check out_dir/chatbot_model_custom.pth \\
        --model examples/article/torch_chatbot.py:ChatbotModel_No_Custom_Layer \\
        --model-args '{"vocab_size": 1000, "embedding_dim": 64, "hidden_size": 128}'
"""

from __future__ import annotations

import os
import sys

import torch
import torch.nn as nn

ARTICLE_ARGS = {"vocab_size": 1000, "embedding_dim": 64, "hidden_size": 128}


# The article's classes, exactly as `ckptdoctor demo` runs them (one definition for the demo and the tests).
from ckptdoctor.demo.scripts.example2_torch import (  # noqa: E402
    ChatbotModel,
    ChatbotModel_No_Custom_Layer,
    CustomLinear,
)

__all__ = ["ARTICLE_ARGS", "ChatbotModel", "ChatbotModelRenamedHead", "ChatbotModel_No_Custom_Layer",
           "CustomLinear", "save_article_checkpoint"]


class ChatbotModelRenamedHead(nn.Module):
    """``fc`` renamed to ``head`` and ``custom_linear`` dropped: a rename the names alone do not show."""

    def __init__(self, vocab_size: int, embedding_dim: int, hidden_size: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_size)
        self.custom_linear = CustomLinear(hidden_size, 2)
        self.head = nn.Linear(hidden_size, 2)


def save_article_checkpoint(folder: str) -> str:
    """``torch.save(model.state_dict(), 'chatbot_model_custom.pth')`` exactly as in the article."""
    torch.manual_seed(0)
    model = ChatbotModel(**ARTICLE_ARGS)
    path = os.path.join(folder, "chatbot_model_custom.pth")
    torch.save(model.state_dict(), path)
    return path


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    print(save_article_checkpoint(out))
