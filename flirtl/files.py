"""Writing output files so that a failure never leaves a half-written one behind."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable, Union


def atomic_write(path, content: Union[bytes, Callable]) -> None:
    """Write `content` (bytes, or a function given the open binary file) to `path`.

    It goes to a uniquely named temporary file in the same directory (os.replace cannot cross file
    systems), created with the usual permissions, synced, then renamed over `path` in one step: an
    existing file stays intact until the new one is complete.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "xb") as file:
            if callable(content):
                content(file)
            else:
                file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if temporary.exists():
            temporary.unlink()
        raise
