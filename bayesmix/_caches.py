"""Cache folders for the libraries bayesmix uses, where the home folder cannot hold them.

PyTensor (compiled code and numba's cache under ``~/.pytensor``), numba and the
libraries that use platformdirs (``~/.cache``) and matplotlib (``~/.config/matplotlib``)
write under the home folder. With HOME unwritable (a container, a CI runner,
``HOME=/nonexistent``) PyTensor fails on import and matplotlib warns. Where a
default folder cannot be created, :func:`use_writable_caches` points its environment
variable at a private folder under the temporary directory (kept between runs, so
compiled code is reused), once, from ``bayesmix/__init__.py``, before any of those
libraries is imported. Nothing changes where the defaults work or where the user has
set the variable. Only the standard library is used here: ``bayesmix --help`` stays
light.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path


def _writable(path: Path) -> bool:
    """Whether ``path`` is a folder one can write in, or could be created as one.

    Tested by making and removing a folder in ``path`` or in its nearest existing
    ancestor: ``os.access`` says yes to root everywhere, also on ``/proc``, where
    nothing can be created.
    """
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    if not probe.is_dir():
        return False
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".bayesmix-probe-", dir=probe))
    except OSError:
        return False
    return True


def _private_folder() -> Path | None:
    """A folder only this user can write in, under the temporary directory: the same one
    on every run where possible (``bayesmix-<uid>``), else a new one; None if neither
    can be made."""
    getuid = getattr(os, "getuid", None)
    if getuid is not None:
        base = Path(tempfile.gettempdir()) / f"bayesmix-{getuid()}"
        try:
            base.mkdir(mode=0o700, exist_ok=True)
            info = os.lstat(base)
            # Not a link, ours, and writable by no one else: another user cannot have
            # planted it.
            if stat.S_ISDIR(info.st_mode) and info.st_uid == getuid() and not info.st_mode & 0o022:
                return base
        except OSError:
            pass
    try:
        return Path(tempfile.mkdtemp(prefix="bayesmix-"))
    except OSError:
        return None


def _pytensor_configured(environ) -> bool:
    """Whether PYTENSOR_FLAGS or a ``.pytensorrc`` file sets PyTensor's base compile folder
    (numba's cache lives under it even where ``compiledir`` is set)."""
    if "base_compiledir" in environ.get("PYTENSOR_FLAGS", ""):
        return True
    for name in environ.get("PYTENSORRC", "~/.pytensorrc").split(os.pathsep):
        try:
            if "base_compiledir" in Path(name).expanduser().read_text():
                return True
        except (OSError, UnicodeDecodeError, RuntimeError):
            continue
    return False


def use_writable_caches(environ=None) -> dict:
    """Point the cache folders that cannot be written at a private temporary folder.

    Parameters
    ----------
    environ : mapping, optional
        The environment to read and change (default ``os.environ``).

    Returns
    -------
    dict
        The variables set, by name (empty where every default works).
    """
    environ = os.environ if environ is None else environ
    # PyTensor reads HOME itself; the others go through os.path.expanduser, which
    # reads HOME too.
    home = Path(environ.get("HOME") or Path.home())
    cache = Path(environ.get("XDG_CACHE_HOME") or home / ".cache")
    if sys.platform.startswith(("linux", "freebsd")):
        mpl_dirs = [Path(environ.get("XDG_CONFIG_HOME") or home / ".config") / "matplotlib", cache / "matplotlib"]
    else:
        mpl_dirs = [home / ".matplotlib"]
    wanted = {}
    if not _writable(cache):
        wanted["XDG_CACHE_HOME"] = "cache"  # numba, platformdirs
    if not environ.get("MPLCONFIGDIR") and not all(map(_writable, mpl_dirs)):
        wanted["MPLCONFIGDIR"] = "matplotlib"
    if not _pytensor_configured(environ) and not _writable(home / ".pytensor"):
        wanted["PYTENSOR_FLAGS"] = "pytensor"
    if not wanted:
        return {}
    private = _private_folder()
    if private is None:
        return {}
    changes = {}
    for name, sub in wanted.items():
        folder = private / sub
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
        except OSError:
            continue
        if name == "PYTENSOR_FLAGS":
            flags = environ.get("PYTENSOR_FLAGS", "")
            changes[name] = f"{flags},base_compiledir={folder}" if flags else f"base_compiledir={folder}"
        else:
            changes[name] = str(folder)
    environ.update(changes)
    return changes
