"""Known warning and error messages of torch, keras, TensorFlow, transformers, safetensors, peft and
accelerate, as data. Each entry is a W rule that explains one message."""
