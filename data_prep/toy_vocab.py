"""The token ids the synthetic generators can write: the toy model's vocabulary subset (`text.vocab_ids`,
`seedr1_jax/models/vocab.py`).

Every split of `synth` (train, train_cot, L1-L3, LongVideoBench), its warm-up sets and every curriculum style,
generated text-only and tokenized exactly as the input pipeline tokenizes them (`pipeline.sample_tokens`: chat
template, vision placeholders, options, SFT response), plus every Qwen2 token that is a space and 3-8 lowercase
letters (the `read_any` fillers are drawn from those), the ASCII characters and the special tokens. The words the
generators draw from are closed lists, so a sample at a few seeds covers them; `tests/test_vocab.py` checks that
data at unseen seeds are covered, and the input pipeline refuses a sample with an id outside the subset.

    python -m data_prep.toy_vocab   # prints the count and writes seedr1_jax/models/toy_vocab.json
"""

from __future__ import annotations

import json
import os
import re
import tempfile

import ml_collections
import numpy as np

SEEDS = (0, 1, 2)
NUM = 400  # records per split, style and seed
OUT = os.path.join(os.path.dirname(__file__), "..", "seedr1_jax", "models", "toy_vocab.json")


def _generated(root: str, seed: int) -> list[tuple[str, str]]:
    """(data root, split) of every text-only synthetic set generated under `root`."""
    from data_prep import curriculum, synth

    sets = []
    d = os.path.join(root, f"synth{seed}")
    synth.generate(d, num_train=NUM, num_val=NUM, seed=seed, media=False, option_order="shuffle")
    sets += [(d, s) for s in ("train", "train_cot", "L1", "L2", "L3", "lvb")]
    for think in synth.WARMUP_THINKS:
        w = os.path.join(root, f"warmup{seed}_{think}")
        synth.generate_warmup(w, num=NUM, seed=seed, media=False, think=think)
        sets.append((w, "train_cot"))
    for style in curriculum.STYLES:
        c = os.path.join(root, f"curriculum{seed}_{style}")
        curriculum.generate(c, NUM, seed=seed, media=False, style=style)
        sets.append((c, "train_cot"))
    return sets


def data_token_ids(root: str, split: str, tokenizer, seed: int = 0) -> set[int]:
    """Every token id the input pipeline writes for the records of one split's annotation file."""
    from data_prep.annotations import find_annotation_file, parse, read_lines
    from seedr1_jax.data.pipeline import default_config, sample_tokens

    cfg = ml_collections.ConfigDict(dict(default_config().to_dict(), seed=seed))
    ids: set[int] = set()
    path = find_annotation_file(root, split)
    for line, rec, err in read_lines(path):
        if err:  # the generators write valid records: a bad one is a bug, not a sample to skip
            raise ValueError(f"{path}:{line}: {err}")
        item = parse(split, rec, root, media=False)
        vgrid = (1, 2, 2) if item["video"] else None
        igrid = (1, 2, 2) if item["image"] else None
        for epoch in (0, 1):  # training options are drawn per epoch: another order, the same words
            got, *_ = sample_tokens(item, cfg, tokenizer, (vgrid, igrid, None, 2), epoch)
            ids.update(int(i) for i in got)
    return ids


def token_ids(seeds=SEEDS) -> list[int]:
    """The sorted subset: generated data at `seeds`, the 3-8-letter word tokens, ASCII and the special tokens."""
    from seedr1_jax.models.processor import load_tokenizer

    tok = load_tokenizer()
    vocab = tok.get_vocab()
    ids = {i for t, i in vocab.items() if re.fullmatch(r"\u0120[a-z]{3,8}", t) or (len(t) == 1 and ord(t) < 128)}
    ids |= {i for i in vocab.values() if i >= 151643}  # <|endoftext|>, <|im_start|>, <|im_end|>, vision tokens
    with tempfile.TemporaryDirectory() as root:
        for seed in seeds:
            for data_root, split in _generated(root, seed):
                ids |= data_token_ids(data_root, split, tok, seed)
    return sorted(ids)


def load() -> tuple[int, ...]:
    """The shipped subset (seedr1_jax/models/toy_vocab.json)."""
    with open(OUT) as f:
        return tuple(json.load(f)["ids"])


def main() -> None:
    ids = token_ids()
    with open(OUT, "w") as f:
        json.dump({"seeds": list(SEEDS), "records_per_set": NUM, "ids": ids}, f, separators=(",", ":"))
    print(f"{len(ids)} token ids -> {os.path.normpath(OUT)} ({np.ptp(ids) + 1} id range)")


if __name__ == "__main__":
    main()
