"""The article's Example 2 (custom layer), as a user would run it with PyTorch 2.13.

`python example2_torch.py save` saves the state_dict of ChatbotModel (with CustomLinear, and the unused
`fc` that is saved anyway) and, as many users do, the whole module. `python example2_torch.py load`
runs the article's loading code and prints what torch itself does.
"""

import sys

import torch
import torch.nn as nn


class CustomLinear(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.randn(out_features))

    def forward(self, x):
        return torch.matmul(x, self.weight.T) + self.bias


class ChatbotModel(nn.Module):
    def __init__(self, vocab_size=1000, embedding_dim=64, hidden_size=128):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_size)
        self.custom_linear = CustomLinear(hidden_size, 2)  # Using our custom Layer
        self.fc = nn.Linear(hidden_size, 2)

    def forward(self, x):
        embedded = self.embedding(x)
        lstm_out, _ = self.lstm(embedded)
        return self.custom_linear(lstm_out[:, -1, :])


class ChatbotModel_No_Custom_Layer(nn.Module):
    def __init__(self, vocab_size=1000, embedding_dim=64, hidden_size=128):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_size)
        # Missing custom layer
        self.fc = nn.Linear(hidden_size, 2)

    def forward(self, x):
        embedded = self.embedding(x)
        lstm_out, _ = self.lstm(embedded)
        return self.fc(lstm_out[:, -1, :])


def attempt(label, func):
    try:
        result = func()
        print(f"  {label}: OK -> {result}")
        return result
    except Exception as exc:  # print what torch raised, in full, as a traceback would
        print(f"  {label}: {type(exc).__name__}: {exc}")
        return None


if __name__ == "__main__":
    if sys.argv[1:] == ["save"]:
        model = ChatbotModel(vocab_size=1000, embedding_dim=64, hidden_size=128)
        torch.save(model.state_dict(), "chatbot_model_custom.pth")
        torch.save(model, "chatbot_model_whole.pth")  # the whole module, pickled with its __main__ classes
        print("  saved chatbot_model_custom.pth (state_dict) and chatbot_model_whole.pth (whole module)")
    else:
        model_load = ChatbotModel_No_Custom_Layer(vocab_size=1000, embedding_dim=64, hidden_size=128)
        attempt("model_load.load_state_dict(torch.load('chatbot_model_custom.pth'))  [the article's line]",
                lambda: model_load.load_state_dict(torch.load("chatbot_model_custom.pth")))
        attempt("... with strict=False",
                lambda: model_load.load_state_dict(torch.load("chatbot_model_custom.pth"), strict=False))
        attempt("torch.load('chatbot_model_whole.pth')  [whole module, weights_only=True default]",
                lambda: type(torch.load("chatbot_model_whole.pth")).__name__)
