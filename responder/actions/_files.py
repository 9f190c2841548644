"""Crash-safe file replacement: temp file in the same directory, fsync, rename, fsync dir."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import struct
import tempfile
from pathlib import Path

from responder.model import fence
from responder.model.errors import PermanentError, TemporaryError

# FS_IOC_GETFLAGS, _IOR('f', 1, long): the inode flags lsattr shows.
_FS_IOC_GETFLAGS = (2 << 30) | (struct.calcsize("l") << 16) | (ord("f") << 8) | 1
_FS_IMMUTABLE_FL, _FS_APPEND_FL = 0x10, 0x20

# These say the configuration points somewhere unusable; retrying cannot help.
_PERMANENT_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.ENOENT,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EROFS,
}


def file_error(what: str, exc: OSError) -> PermanentError | TemporaryError:
    """Map an OSError on a file to the error class retrying can or cannot fix."""
    message = f"{what}: {exc.strerror or exc}"
    if exc.errno in _PERMANENT_ERRNOS:
        return PermanentError(message)
    return TemporaryError(message)


def read_text(path: Path) -> str | None:
    """The file's text, or None when it does not exist."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise file_error(f"cannot read {path}", exc) from None


def atomic_write(path: Path, text: str, default_mode: int = 0o644) -> None:
    """Replace path's content with text so readers see the old or the new file, never half."""
    # Write through symlinks: replacing the link itself would detach it from its target.
    target = Path(os.path.realpath(path))
    try:
        existing = os.stat(target)
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise file_error(f"cannot stat {target}", exc) from None
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise file_error(f"cannot create a temporary file next to {target}", exc) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), existing.st_mode & 0o7777 if existing else default_mode)
            if existing is not None:
                _keep_owner(handle.fileno(), existing)
            os.fsync(handle.fileno())
        fence.check(f"replace {target}")  # the moment the change becomes visible
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except OSError as exc:
        _discard(tmp)
        raise file_error(f"cannot write {target}", exc) from None
    except BaseException:
        _discard(tmp)
        raise


def make_parent(path: Path, what: str) -> None:
    """Create path's directory if needed; the error names what needed it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise file_error(f"{what}: cannot create {path.parent}", exc) from None


def remove(path: Path) -> None:
    """Delete path if it exists, durably."""
    target = Path(os.path.realpath(path))
    fence.check(f"remove {target}")
    try:
        target.unlink(missing_ok=True)
        _fsync_dir(target.parent)
    except OSError as exc:
        raise file_error(f"cannot remove {target}", exc) from None


def _keep_owner(fd: int, existing: os.stat_result) -> None:
    # Only root may give a file away; for anyone else the owner is already theirs or stays ours.
    with contextlib.suppress(PermissionError):
        os.fchown(fd, existing.st_uid, existing.st_gid)


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry itself reaches the disk.
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _discard(tmp: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


def unwritable_reason(path: Path, create_parents: bool = False) -> str | None:
    """Why atomic_write(path) would fail, judged without writing anything; None if it would not.

    Read-only on purpose: no probe file, which could wake whatever watches the directory.
    It covers what stops root too (a read-only filesystem, chattr +i or +a, a full disk),
    not only permission bits. With create_parents, missing directories are allowed as long
    as the nearest existing one could hold them.
    """
    target = Path(os.path.realpath(path))
    directory = target.parent
    while create_parents and not directory.exists() and directory != directory.parent:
        directory = directory.parent
    try:
        info = os.stat(directory)
    except FileNotFoundError:
        return f"directory {directory} does not exist"
    except OSError as exc:
        return f"cannot reach directory {directory}: {exc.strerror}"
    if not stat.S_ISDIR(info.st_mode):
        return f"{directory} is not a directory"
    for where in (directory, target):
        flags = _inode_flags(where)
        if flags & _FS_IMMUTABLE_FL:
            return f"{where} is immutable (chattr +i)"
        if flags & _FS_APPEND_FL:
            return f"{where} is append-only (chattr +a)"
    space = os.statvfs(directory)
    if space.f_flag & os.ST_RDONLY:
        return f"directory {directory} is on a read-only filesystem"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"directory {directory} is not writable by uid {os.geteuid()}"
    if space.f_blocks == 0:
        return f"directory {directory} is on a virtual filesystem that holds no files"
    free = space.f_bfree if os.geteuid() == 0 else space.f_bavail
    if free == 0 or (space.f_files and space.f_ffree == 0):
        return f"the filesystem of {directory} is full"
    return None


def _inode_flags(path: Path) -> int:
    """The inode's flags (chattr), or 0 when it has none we can read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return 0  # absent, or not ours to open: the other checks speak for it
    try:
        buffer = bytearray(struct.calcsize("l"))
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, buffer)
    except OSError:
        return 0  # a filesystem without inode flags
    finally:
        os.close(fd)
    return int(struct.unpack_from("i", buffer)[0])
