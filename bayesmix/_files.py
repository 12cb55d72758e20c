"""Writing output files atomically: a reader never sees a half-written fit, card or table.

Every file bayesmix writes goes through :func:`atomic_path` (or the helpers built on it):
the content is written to a temporary file beside the target and renamed over it in one
step, so that a failed or interrupted write leaves the previous file byte-identical.
:func:`check_output_path` lets a command refuse a bad output path before any long work.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path

from .errors import UsageError


def check_output_path(path, *, option: str = "--out", folder: bool = False) -> Path:
    """Refuse an output path that cannot be written, before any work is done.

    Parameters
    ----------
    path : str or path-like
        The file (or, with ``folder=True``, the folder) a command will write.
    option : str
        The option that named it, for the message.
    folder : bool
        The output is a folder (created if missing) rather than a file.

    Returns
    -------
    Path

    Raises
    ------
    UsageError
        If a file output names an existing folder, a folder output names an existing
        file, or the nearest existing parent is not a writable folder.
    """
    path = Path(path)
    if str(path) == "":
        raise UsageError(f"{option} is empty: name the {'folder' if folder else 'file'} to write")
    if not folder and path.is_dir():
        raise UsageError(f"{option} {path} is a folder; name a file to write, e.g. {path / 'out'}")
    if folder and path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path} is a file; name a folder to write into")
    parent = path if folder else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: the folder {parent} is not writable")
    return path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    Missing parent folders are created. The file is made world-readable (``mkstemp``
    creates it private; outputs are ordinary files). On an exception the temporary file
    is removed and ``path`` is left untouched.

    Raises
    ------
    UsageError
        If ``path`` is an existing folder or its folder cannot be created or written.
    """
    path = check_output_path(path, option="output")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror or err}") from None
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(path, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`).

    Parameters
    ----------
    path : str or path-like
    text : str
    encoding : str

    Returns
    -------
    Path
    """
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding=encoding) as handle:
            handle.write(text)
    return Path(path)


def json_safe(obj):
    """A copy of ``obj`` that :func:`json.dumps` writes as strict JSON.

    Mappings (keys as strings), lists, tuples and arrays are copied recursively; numpy
    scalars become Python numbers; NaN and infinities become ``None``. Other objects are
    returned unchanged.
    """
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def json_text(obj, *, indent: int | None = 2) -> str:
    """Strict JSON text of ``obj`` after :func:`json_safe` (no NaN; unknown objects as str)."""
    return json.dumps(json_safe(obj), indent=indent, allow_nan=False, default=str)


def write_json_atomic(path, obj, *, indent: int | None = 2) -> Path:
    """Write :func:`json_text` of ``obj`` (and a final newline) to ``path`` atomically."""
    return write_text_atomic(path, json_text(obj, indent=indent) + "\n")


def json_report(obj, path=None, *, indent: int | None = 2) -> str:
    """:func:`json_text` of ``obj``; also written to ``path`` (atomically, with a final
    newline) when given. What every result's ``to_json`` returns."""
    text = json_text(obj, indent=indent)
    if path is not None:
        write_text_atomic(path, text + "\n")
    return text
