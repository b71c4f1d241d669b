"""Writing corrected or converted files: ``convert`` (to safetensors, streaming, without unpickling),
``diff`` (two checkpoints of any formats, tensor by tensor) and the atomic output they share.

Every output goes through ``atomic.atomic_output``: a temporary file in the target folder, fsync,
verification, rename. A process killed at any moment leaves either no output or a complete one.
"""
