"""What reading a member through the ``zipfile`` module raises when the archive is damaged.

One flipped byte can give a bad CRC or magic (BadZipFile), an invalid deflate stream (zlib.error), an
unknown compression method or flag bits (NotImplementedError), the "encrypted" flag (RuntimeError), or
a stream that ends early (EOFError). Readers catch these and report F103/F107, never a traceback.
"""

from __future__ import annotations

import zipfile
import zlib

ZIP_READ_ERRORS: tuple[type[Exception], ...] = (zipfile.BadZipFile, zlib.error, NotImplementedError,
                                                RuntimeError, EOFError, OSError)
