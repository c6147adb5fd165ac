"""seedr1_jax.fs: one API for local paths and object stores (the append path used for gs:// is exercised too)."""

from seedr1_jax import fs


def test_local_roundtrip(tmp_path, monkeypatch):
    d = tmp_path / "a" / "b"
    fs.makedirs(d)
    assert fs.isdir(d) and fs.listdir(tmp_path / "a") == ["b"]
    p = str(d / "log.jsonl")
    fs.append_lines(p, ["one", "two\n"])
    fs.append_lines(p, ["three"])
    assert fs.read_text(p) == "one\ntwo\nthree\n"
    # the object-store branch (read + rewrite) gives the same result
    monkeypatch.setattr(fs, "remote", lambda path: True)
    fs.append_lines(p, ["four"])
    assert fs.read_text(p).splitlines() == ["one", "two", "three", "four"]
    assert fs.absolute("gs://bucket/x") == "gs://bucket/x"
