"""Output files: checked before long work starts, written so that a failure never leaves a
half-written one behind, and never written over an input."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable, Iterable, Union


def atomic_write(path, content: Union[bytes, Callable]) -> None:
    """Write `content` (bytes, or a function given the open binary file) to `path`.

    It goes to a uniquely named temporary file in the same directory (os.replace cannot cross file
    systems), created with the usual permissions, synced, then renamed over `path` in one step: an
    existing file stays intact until the new one is complete. An interruption (Ctrl-C, or SIGTERM
    under `flirtl`, which turns it into an exception) removes the temporary file.
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


def _inside(path: Path, other: Path) -> bool:
    return path == other or other in path.parents


def check_output_file(path, *, suffix: str | None = None, what: str = "output",
                      keep: Iterable = ()) -> Path:
    """`path` as an output file that can be written: the right suffix, not a directory, in an existing
    writable directory, and neither one of the `keep` files nor inside one of the `keep` directories
    (inputs, model directories). Raises ValueError / FileNotFoundError naming the problem."""
    path = Path(path)
    if suffix is not None and path.suffix != suffix:
        raise ValueError(f"{what} must name a {suffix} file, not {str(path)!r}")
    if path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a directory, not a file")
    if path.exists() and not path.is_file():
        raise ValueError(f"{what} {str(path)!r} exists and is not a regular file")
    parent = path.parent
    if not parent.exists():
        raise FileNotFoundError(f"{what} directory {str(parent)!r} does not exist")
    if not parent.is_dir():
        raise ValueError(f"{what} directory {str(parent)!r} is not a directory")
    _probe(parent, f"{what} directory {str(parent)!r}")
    resolved = path.resolve()
    for kept in keep:
        kept = Path(kept)
        if _inside(resolved, kept.resolve()):
            raise ValueError(f"{what} {str(path)!r} would overwrite {str(kept)!r}, an input of this "
                             f"command: write elsewhere")
    return path


def check_output_dir(path, *, what: str = "output directory") -> Path:
    """`path` as a directory that exists or can be created, and written into: not a file, its
    nearest existing ancestor a writable directory. Leaves nothing behind."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{what} {str(path)!r} is a file, not a directory")
        existing = path
    else:
        existing = next((parent for parent in path.absolute().parents if parent.exists()), Path("/"))
        if not existing.is_dir():
            raise ValueError(f"{what} {str(path)!r} lies under {str(existing)!r}, which is not a directory")
    _probe(existing, f"{what} {str(path)!r}")
    return path


def _probe(directory: Path, label: str) -> None:
    """Create and remove a temporary directory in `directory`: permissions alone do not tell (root
    passes every permission check, and /proc or a read-only mount still refuse a new entry)."""
    import tempfile

    try:
        os.rmdir(tempfile.mkdtemp(prefix=".flirtl-probe-", dir=directory))
    except OSError as error:
        raise PermissionError(f"{label} cannot be written: {error.strerror}") from None


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(nbytes: int, what: str, advice: str) -> None:
    """Refuse, before allocating, work whose arrays would not fit in the available memory."""
    free = available_memory()
    if free is not None and nbytes > free:
        raise MemoryError(f"{what} needs {nbytes / 2 ** 30:,.1f} GiB of memory, "
                          f"{free / 2 ** 30:,.1f} GiB are available: {advice}")


def read_json_object(path, *, what: str) -> dict:
    """A JSON file that must hold an object; ValueError naming the file for anything else."""
    import json

    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except UnicodeDecodeError as error:
        raise ValueError(f"{what} {str(path)!r} is not a text file ({error.reason})") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{what} {str(path)!r} is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise ValueError(f"{what} {str(path)!r} must hold a JSON object, not a {type(document).__name__}")
    return document


def read_npz(path, *, what: str) -> dict:
    """Every array of a .npz file (no pickled objects); ValueError naming the file when it is
    corrupt or truncated."""
    import zipfile

    import numpy as np

    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, KeyError) as error:
        if isinstance(error, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise
        raise ValueError(f"{what} {str(path)!r} is not a readable .npz file (corrupt or truncated?): "
                         f"{type(error).__name__}: {str(error)[:200]}") from None
