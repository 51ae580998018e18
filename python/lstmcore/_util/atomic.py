"""Writing a file atomically: a temporary file beside it, then one rename over it.

A crash or an interrupt leaves either the old file or the new one, never half of one:

- The temporary file is made in the directory of the file finally written. A symlink
  is written through: its target (resolved) is replaced and the link is kept, as
  ``open(path, "w")`` would write through it.
- It gets the mode of the file it replaces, before a byte is written (a 0600 file stays
  0600); a new file gets what ``open`` gives one (0o666 less the umask). The owner,
  ACLs and extended attributes are not carried over.
- On any failure, KeyboardInterrupt included, it is removed. What a killed process left
  behind (``.NAME.<12 hex>.tmp``) is removed by the next write of the same target. Each
  write holds an advisory lock (flock) on its temporary file until the rename, so one
  process never removes the temporary file of another's write in progress.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat

try:
    import fcntl
except ImportError:  # Windows, which refuses to remove a file that is open instead
    fcntl = None  # type: ignore[assignment]

_NAME_KEEP = 200  # of the target's name in the temporary's: 18 more must fit NAME_MAX (255)


def write_atomically(path, write):
    """Calls ``write(file)`` on a new temporary file (binary), then renames it over ``path``."""
    target = _written_path(os.fspath(path))
    directory, name = os.path.split(target)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    _remove_abandoned(directory, name)
    temporary, descriptor = _create(directory, name, mode)
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
            if fcntl is not None:  # renamed while still locked (POSIX renames open files)
                os.replace(temporary, target)
        if fcntl is None:
            os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_directory(directory)


def _written_path(path):
    """The file ``open(path, "w")`` would write: a symlink's final target."""
    path = os.path.abspath(path)
    if not os.path.islink(path):
        return path
    target = os.path.realpath(path)
    if os.path.islink(target):  # realpath stops at a loop
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
    return target


def _temporary_pattern(name):
    return re.compile(re.escape(f".{name[:_NAME_KEEP]}.") + r"[0-9a-f]{12}\.tmp")


def _create(directory, name, mode):
    """(path, descriptor) of a new temporary file for ``name``, locked, of ``mode``."""
    for _ in range(10):
        temporary = os.path.join(directory, f".{name[:_NAME_KEEP]}.{secrets.token_hex(6)}.tmp")
        # 0o666 lets the umask set a new file's mode as open() does; 0o600 until the
        # replaced file's own mode is set, so no one else reads it meanwhile
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else 0o600)
        try:
            if mode is not None:
                os.chmod(descriptor if os.chmod in os.supports_fd else temporary, mode)
            if fcntl is None:
                return temporary, descriptor
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            if os.fstat(descriptor).st_nlink > 0:
                return temporary, descriptor
            # another write removed it as abandoned before the lock was taken: again
            os.close(descriptor)
        except BaseException:
            os.close(descriptor)
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    raise OSError(errno.EEXIST, "no temporary file could be kept for writing", os.path.join(directory, name))


def _remove_abandoned(directory, name):
    """Removes the temporary files of writes of ``name`` that died before their rename."""
    pattern = _temporary_pattern(name)
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                _remove_unless_locked(entry.path)


def _remove_unless_locked(path):
    if fcntl is None:
        with contextlib.suppress(OSError):
            os.unlink(path)
        return
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while a write holds it
        os.unlink(path)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _sync_directory(directory):
    # makes the rename itself durable; not possible on every platform (Windows)
    with contextlib.suppress(OSError, AttributeError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
