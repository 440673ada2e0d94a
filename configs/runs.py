"""Run bookkeeping shared by every entry point: atomic file writes, seeding, run folders.

A killed process must never leave a torn file behind, so every output goes to a temp name
in the same folder and is `os.replace`d into place (atomic on POSIX).
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` then rename tmp_path onto `path`; the tmp file keeps the suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        # mkstemp creates 0600; published outputs get the usual umask-governed mode
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


class DamagedFileError(ValueError):
    """A file on disk exists but cannot be read as what it should be; the message is one line
    naming the file, what it should be, and what is wrong with it."""


def damaged(path: str | Path, what: str, exc: BaseException | None = None, reason: str = "") -> DamagedFileError:
    """One-line error for a damaged `path` (e.g. what="clip file (.npz)"), diagnosing the common
    cases from the bytes themselves rather than repeating a library's misleading hint. `reason`
    states a content problem of a file that reads fine (e.g. a wrong array shape)."""
    path = Path(path)
    if reason:
        return DamagedFileError(f"{path}: damaged {what}: {reason}")
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        return DamagedFileError(f"{path}: unreadable {what} ({e.strerror or e})")
    if size == 0:
        reason = "empty file (0 bytes)"
    elif path.suffix in (".npz", ".zip") and not head.startswith(b"PK"):
        reason = f"not a zip archive (starts with {head[:4]!r}); the file is corrupt or was not written by this project"
    elif path.suffix == ".npy" and not head.startswith(b"\x93NUMPY"):
        reason = f"not a .npy array (starts with {head[:4]!r})"
    elif exc is not None:
        msg = " ".join(str(exc).split()) or type(exc).__name__
        reason = f"{type(exc).__name__}: {msg[:200]} (size {size} bytes; truncated or corrupt)"
    else:
        reason = f"unreadable (size {size} bytes)"
    return DamagedFileError(f"{path}: damaged {what}: {reason}")


def read_json_fields(path: str | Path, fields: tuple[str, ...], what: str) -> dict[str, Any]:
    """The JSON object in `path` with every key of `fields` present; a file that is not JSON, not an
    object, or lacks a field is one `DamagedFileError` line naming the file, `what` it is, and the field.
    (A missing file is the caller's to report: what it should have been differs per caller.)"""
    f = Path(path)
    try:
        meta = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise damaged(f, what, e) from None
    if not isinstance(meta, dict):
        raise damaged(f, what, reason=f"not a JSON object (a {type(meta).__name__})")
    for key in fields:
        if key not in meta:
            raise damaged(f, what, reason=f"missing field {key!r}")
    return meta


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (if imported) for a reproducible run."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:  # torch is a dependency, but config-only tools need not import it
        return
    torch.manual_seed(seed)


def new_run_dir(kind: str, name: str, root: str | Path = "runs") -> Path:
    """`runs/<kind>/<name>-<YYYYmmdd-HHMMSS>/`, created."""
    d = Path(root) / kind / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    d.mkdir(parents=True, exist_ok=False)
    return d
