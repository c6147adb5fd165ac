"""File access that works the same for local paths and `gs://` (any scheme tf.io.gfile knows): one layer for all I/O.

Local paths go through os/shutil; `scheme://` paths through `tf.io.gfile` (TensorFlow's GCS client, the same
backend TFDS and etils use for gs://), imported only when such a path is used. Tests exercise the remote
branch on TensorFlow's in-memory `ram://` filesystem and, through the CLI, on a GCS server (tests/test_gcs.py).
Object stores have no rename: a folder is never swapped in place here (`seedr1 prep` publishes through a
pointer object instead, docs/tpu.md "What survives what").
"""

from __future__ import annotations

import contextlib
import glob as _glob
import os
import posixpath
import shutil
import tempfile
import uuid


def remote(path) -> bool:
    return "://" in str(path)


def _gfile():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf.io.gfile


def absolute(path) -> str:
    return str(path) if remote(path) else os.path.abspath(path)


def join(path, *parts) -> str:
    return posixpath.join(str(path), *parts) if remote(path) else os.path.join(path, *parts)


def exists(path) -> bool:
    return _gfile().exists(str(path)) if remote(path) else os.path.exists(path)


def isdir(path) -> bool:
    return _gfile().isdir(str(path)) if remote(path) else os.path.isdir(path)


def isfile(path) -> bool:
    return exists(path) and not isdir(path)


def listdir(path) -> list[str]:
    """Sorted child names (no trailing slashes); [] when `path` is not a folder."""
    if not isdir(path):
        return []
    names = _gfile().listdir(str(path)) if remote(path) else os.listdir(path)
    return sorted(n.rstrip("/") for n in names)


def glob(pattern) -> list[str]:
    return sorted(_gfile().glob(str(pattern)) if remote(pattern) else _glob.glob(str(pattern)))


def makedirs(path) -> None:
    if remote(path):
        _gfile().makedirs(str(path))
    else:
        os.makedirs(path, exist_ok=True)


def open(path, mode: str = "r"):  # noqa: A001 -- mirrors the builtin
    """A file object; for whole-file writes prefer write_text/write_bytes (safe replacement remotely)."""
    if remote(path):
        return _gfile().GFile(str(path), mode)
    import builtins

    return builtins.open(path, mode)


def size(path) -> int:
    return _gfile().stat(str(path)).length if remote(path) else os.path.getsize(path)


def read_text(path) -> str:
    with open(path, "r") as f:
        return f.read()


def read_bytes(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def write_text(path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path, data: bytes) -> None:
    """Writes the whole file; remotely through a temporary object renamed over `path`, so a reader sees the
    old or the new content and a rewrite never keeps a longer old tail."""
    if not remote(path):
        with open(path, "wb") as f:
            f.write(data)
        return
    tmp = _tmp_name(path)
    with _gfile().GFile(tmp, "wb") as f:
        f.write(data)
    _gfile().rename(tmp, str(path), overwrite=True)


def _tmp_name(path, tag: str = "tmp") -> str:
    """A hidden sibling name that no other name starts with (some stores match paths by prefix)."""
    head, name = posixpath.split(str(path).rstrip("/"))
    return posixpath.join(head, f".{tag}-{uuid.uuid4().hex[:8]}-{name}")


def append_lines(path, lines: list[str]) -> None:
    """Appends lines; on object stores (no append) the object is rewritten, which is fine for logs."""
    if not lines:
        return
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    if not remote(path):
        with open(path, "a") as f:
            f.write(text)
            f.flush()
        return
    write_text(path, (read_text(path) if exists(path) else "") + text)


def copy(src, dst) -> None:
    """Copies one file (either side local or remote), replacing `dst`."""
    if not remote(src) and not remote(dst):
        shutil.copyfile(src, dst)
    elif not remote(dst):
        _gfile().copy(str(src), str(dst), overwrite=True)
    else:
        tmp = _tmp_name(dst)
        _gfile().copy(str(src), tmp, overwrite=False)
        _gfile().rename(tmp, str(dst), overwrite=True)


def copy_tree(src, dst) -> None:
    """Copies folder `src` to `dst` (created; existing files replaced), across local and remote."""
    if not remote(src) and not remote(dst):
        shutil.copytree(src, dst, dirs_exist_ok=True)
        return
    makedirs(dst)
    for name in listdir(src):
        s, d = join(src, name), join(dst, name)
        copy_tree(s, d) if isdir(s) else copy(s, d)


def remove(path) -> None:
    _gfile().remove(str(path)) if remote(path) else os.remove(path)


def rmtree(path) -> None:
    if not exists(path):
        return
    _gfile().rmtree(str(path)) if remote(path) else shutil.rmtree(path)


@contextlib.contextmanager
def local_file(path):
    """A local path with the contents of `path`: the path itself when local, else a temporary copy."""
    if not remote(path):
        yield str(path)
        return
    with tempfile.TemporaryDirectory(prefix="seedr1_") as tmp:
        local = os.path.join(tmp, posixpath.basename(str(path).rstrip("/")))
        copy(path, local)
        yield local


@contextlib.contextmanager
def staged_dir(path):
    """A local folder to write into that ends up at `path`: `path` itself when local, else a temporary
    folder uploaded on success (for writers that need local files, e.g. safetensors shards)."""
    if not remote(path):
        os.makedirs(path, exist_ok=True)
        yield str(path)
        return
    with tempfile.TemporaryDirectory(prefix="seedr1_") as tmp:
        yield tmp
        copy_tree(tmp, path)
