"""Reading and writing listend's own small files safely.

Every file listend reads back -- the config, the tray's settings, the portal
token, kept audio, the private bus address -- may have been replaced by
something that is not a file: a FIFO (an ``open`` that never returns), a
device (``/dev/zero``: endless data), a link to somewhere else, or a file of
gigabytes. :func:`read_regular` opens without blocking, checks that it got a
regular file, and reads at most a bound. :func:`write_private` replaces a
file atomically with mode 0600 (or another mode given), never writing through a link;
:func:`make_private` repairs an existing file to 0600 (older versions wrote
some 0644), never changing modes through a link.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
from pathlib import Path


class UnsafeFile(OSError):
    """The path is not a regular file, or it is larger than allowed."""


def read_regular(path: Path | str, max_bytes: int, follow_symlinks: bool = True) -> bytes:
    """The contents of the regular file ``path``, at most ``max_bytes``.

    Raises :class:`FileNotFoundError` (and other :class:`OSError`) like
    ``open``, and :class:`UnsafeFile` for a FIFO, socket, device or
    directory, for a link when ``follow_symlinks`` is false, and for a file
    larger than ``max_bytes``. Never blocks on a FIFO.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP and not follow_symlinks:
            raise UnsafeFile(errno.ELOOP, "is a symbolic link", str(path)) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(errno.EINVAL, "not a regular file", str(path))
        if st.st_size > max_bytes:
            raise UnsafeFile(errno.EFBIG, f"larger than {max_bytes} bytes", str(path))
        chunks, left = [], max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > max_bytes:  # it grew while we read
            raise UnsafeFile(errno.EFBIG, f"larger than {max_bytes} bytes", str(path))
        return data
    finally:
        os.close(fd)


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically: mode 0600, its directory 0700 if created.

    A link at ``path`` is replaced by the new file, never followed, so a
    planted link cannot make listend overwrite its target. ``mode``: another
    mode for the files that are not listend's own to keep private (a desktop
    entry, the user's ``kwinrc`` keeps its own).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # exactly: the umask does not apply
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def make_private(path: Path) -> None:
    """Make the existing file ``path`` 0600 if group or others have any access to it; a link is left alone.

    Raises :class:`OSError` as ``os.stat`` and ``os.chmod`` do: whether that
    is a warning or an error is the caller's to say.
    """
    if path.is_symlink():
        return
    if os.stat(path).st_mode & 0o077:
        os.chmod(path, 0o600)


def sha256_hex(path: Path) -> str:
    """The SHA-256 of the file at ``path``, read a MiB at a time (model files are tens of MiB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
