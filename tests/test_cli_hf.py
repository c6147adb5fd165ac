"""`seedr1 import-hf` / `seedr1 export-hf`: HF -> orbax -> HF is bit-exact; bad input gives a clear exit."""

import numpy as np
from hf_utils import save_hf_model
from test_hf_io import _tensors

from seedr1_jax.cli import main


def test_import_export_round_trip(tmp_path, capsys):
    save_hf_model("b", tmp_path / "hf", seed=8)
    assert main(["import-hf", "--hf-dir", str(tmp_path / "hf"), "--out", str(tmp_path / "ckpt")]) == 0
    assert main(["export-hf", "--ckpt", str(tmp_path / "ckpt"), "--out", str(tmp_path / "out")]) == 0
    src, dst = _tensors(tmp_path / "hf"), _tensors(tmp_path / "out")
    assert sorted(src) == sorted(dst)
    for k in src:
        assert src[k].dtype == dst[k].dtype and np.array_equal(src[k], dst[k]), k
    assert "imported" in capsys.readouterr().out
    # --adapter-only on a full fine-tuning checkpoint: one line, exit 2, nothing written
    assert main(["export-hf", "--ckpt", str(tmp_path / "ckpt"), "--out", str(tmp_path / "a"), "--adapter-only"]) == 2
    assert "needs a LoRA run" in capsys.readouterr().err and not (tmp_path / "a").exists()


def test_import_missing_dir_is_a_clear_error(tmp_path, capsys):
    assert main(["import-hf", "--hf-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "ckpt")]) == 2
    err = capsys.readouterr().err
    assert "config.json not found" in err and "nope" in err
    assert main(["export-hf", "--ckpt", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "model.json not found" in capsys.readouterr().err
