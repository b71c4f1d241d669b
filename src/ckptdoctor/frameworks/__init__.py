"""Live torch / Keras models -> ModelSpec. The ONLY package that imports torch or keras."""
