"""File access that works the same for local paths and `gs://` buckets (etils.epath; TensorFlow's GCS backend)."""

from __future__ import annotations

import os

from etils import epath


def remote(path) -> bool:
    return "://" in str(path)


def absolute(path: str) -> str:
    return str(path) if remote(path) else os.path.abspath(path)


def exists(path) -> bool:
    return epath.Path(path).exists()


def isdir(path) -> bool:
    return epath.Path(path).is_dir()


def listdir(path) -> list[str]:
    p = epath.Path(path)
    return sorted(c.name for c in p.iterdir()) if p.is_dir() else []


def makedirs(path) -> None:
    epath.Path(path).mkdir(parents=True, exist_ok=True)


def read_text(path) -> str:
    return epath.Path(path).read_text()


def write_text(path, text: str) -> None:
    epath.Path(path).write_text(text)


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
    p = epath.Path(path)
    p.write_text((p.read_text() if p.exists() else "") + text)


def copy(src, dst) -> None:
    epath.Path(src).copy(epath.Path(dst), overwrite=True)
