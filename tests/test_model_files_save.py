"""Saving a model file: atomic, no temporary file outliving the next save, the replaced
file's mode kept, symlinks written through."""

import errno
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

import lstmcore
from lstmcore import Dense, Sequential
from lstmcore._util import atomic as _atomic

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes, symlinks and flock as POSIX has them")


def model(seed):
    return Sequential([Dense(3, 2, seed=seed)])


def same_weights(path, seed):
    return np.array_equal(lstmcore.load(path).params["0.weight"], model(seed).params["0.weight"])


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """Sets the process umask for one test (``umask(value)``), then restores it."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


# ----------------------------------------------------------------------- modes


@posix_only
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o444, 0o755])
def test_a_replaced_file_keeps_its_mode(tmp_path, umask, mode):
    path = tmp_path / "model.npz"
    model(0).save(path)
    os.chmod(path, mode)
    umask(0o077)  # the umask would make any new file 0600: the old mode wins
    model(1).save(path)
    assert mode_of(path) == mode and same_weights(path, 1)


@posix_only
@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_a_new_file_gets_the_mode_open_gives_one(tmp_path, umask, mask):
    umask(mask)
    model(0).save(tmp_path / "model.npz")
    with open(tmp_path / "by_open", "w"):
        pass
    assert mode_of(tmp_path / "model.npz") == mode_of(tmp_path / "by_open") == 0o666 & ~mask


@posix_only
def test_the_temporary_file_is_private_until_it_has_the_replaced_files_mode(tmp_path, umask, monkeypatch):
    path = tmp_path / "model.npz"
    model(0).save(path)
    os.chmod(path, 0o600)
    umask(0o000)
    seen = []
    monkeypatch.setattr(_atomic.os, "fsync", lambda descriptor: seen.append(stat.S_IMODE(os.fstat(descriptor).st_mode)))
    model(1).save(path)
    assert seen and seen[0] == 0o600  # while its bytes were written, never 0666


# ----------------------------------------------------------------------- symlinks


@posix_only
def test_a_symlink_is_written_through_and_kept(tmp_path):
    (tmp_path / "models").mkdir()
    target = tmp_path / "models" / "v1.npz"
    model(0).save(target)
    os.chmod(target, 0o640)
    link = tmp_path / "current.npz"
    link.symlink_to(os.path.join("models", "v1.npz"))
    model(1).save(link)
    assert link.is_symlink() and os.readlink(link) == os.path.join("models", "v1.npz")
    assert same_weights(target, 1) and mode_of(target) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["current.npz", "models"]
    assert os.listdir(tmp_path / "models") == ["v1.npz"]


@posix_only
def test_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "current.npz"
    link.symlink_to("v2.npz")
    model(2).save(link)
    assert link.is_symlink() and same_weights(tmp_path / "v2.npz", 2)


@posix_only
def test_a_symlink_loop_is_an_error_that_writes_nothing(tmp_path):
    (tmp_path / "a.npz").symlink_to("b.npz")
    (tmp_path / "b.npz").symlink_to("a.npz")
    with pytest.raises(OSError) as caught:  # noqa: PT011 (its errno is checked below)
        model(0).save(tmp_path / "a.npz")
    assert caught.value.errno == errno.ELOOP
    assert sorted(os.listdir(tmp_path)) == ["a.npz", "b.npz"] and (tmp_path / "a.npz").is_symlink()


# ----------------------------------------------------------------------- temporaries

_DIE_WHILE_SAVING = """
import os, signal, sys
import numpy as np
import lstmcore

def dying(file, **arrays):
    file.write(b"PK\\x03\\x04 half a model")
    file.flush()
    os.kill(os.getpid(), signal.SIGKILL)

np.savez = dying
lstmcore.Sequential([lstmcore.Dense(3, 2, seed=5)]).save(sys.argv[1])
"""


@posix_only
def test_the_temporary_of_a_killed_save_is_removed_by_the_next_save(tmp_path):
    path = tmp_path / "model.npz"
    model(0).save(path)
    killed = subprocess.run([sys.executable, "-c", _DIE_WHILE_SAVING, str(path)], check=False, timeout=120)
    assert killed.returncode == -9
    left = [name for name in os.listdir(tmp_path) if name != "model.npz"]
    assert len(left) == 1 and left[0].startswith(".model.npz.") and left[0].endswith(".tmp")
    other = tmp_path / ".other.npz.0123456789ab.tmp"  # another target's: not this save's to remove
    unrelated = tmp_path / ".model.npz.notes.tmp"
    other.write_bytes(b"x")
    unrelated.write_bytes(b"x")
    assert same_weights(path, 0)  # the killed save left the old file whole
    model(1).save(path)
    assert sorted(os.listdir(tmp_path)) == sorted(["model.npz", other.name, unrelated.name])
    assert same_weights(path, 1)


@posix_only
def test_the_temporary_of_a_save_in_progress_is_not_removed(tmp_path):
    import fcntl

    path = tmp_path / "model.npz"
    in_progress = tmp_path / ".model.npz.0123456789ab.tmp"
    with open(in_progress, "wb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a save in another process holds its own
        model(0).save(path)
        assert in_progress.exists()
    model(1).save(path)  # released: now it is abandoned
    assert os.listdir(tmp_path) == ["model.npz"]


def test_a_save_interrupted_inside_the_write_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    model(0).save(path)

    def interrupted(file, **arrays):
        file.write(b"PK\x03\x04 half a model")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model(1).save(path)
    assert os.listdir(tmp_path) == ["model.npz"] and same_weights(path, 0)


def test_a_long_file_name_leaves_room_for_the_temporary(tmp_path):
    path = tmp_path / ("m" * 250 + ".npz")
    model(0).save(path)
    model(1).save(path)
    assert os.listdir(tmp_path) == [path.name] and same_weights(path, 1)
