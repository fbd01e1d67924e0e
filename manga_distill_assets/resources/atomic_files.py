"""Writing files so that a crash leaves the old bytes or the new, never half: used by both local stores.

Both the model store and the IO manager promise that nothing already stored is lost when a run dies; these two
helpers are where that promise is kept on local disk.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

CHUNK_BYTES = 1 << 20


def write_atomically(path: Path, data: bytes) -> None:
    """Temp file beside `path`, fsync, rename: readers see the old bytes or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def copy_hashing(source: BinaryIO, target: Path) -> tuple[int, str]:
    """Copy a stream to a file, fsync it, and return what was actually written (size, sha256)."""
    digest = hashlib.sha256()
    size = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        for chunk in iter(lambda: source.read(CHUNK_BYTES), b""):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return size, digest.hexdigest()
