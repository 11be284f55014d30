"""Replace a small file in one step: a crash or power loss leaves the old content or the new,
never an empty or half-written file.

One helper for every small file Clarity rewrites: the embedded engine's manifest (a torn
manifest is the one file the engine cannot start without), Claude Code's settings files (which
Claude Code may read at any moment) and the pause file (read by every hook). The temporary file
sits in the same directory, so the rename is atomic; it is fsynced before the rename and the
directory after it, so the rename itself survives a power loss.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, data: str | bytes, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8).

    ``mode`` sets the new file's permission bits (created 0600 until then, so a private file is
    never readable by others, even for a moment); without it the umask decides, as for any new
    file. A failed write removes its temporary file and leaves ``path`` as it was.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666 if mode is None else 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
