"""Arm files for `seedr1 study --arms FILE` (seedr1_jax/analysis/study.py reads them); `paper.py` is the default."""
