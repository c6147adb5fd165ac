"""TFDS builder for SEED-Bench-R1 splits: one builder config per split, examples produced by `data_prep.prep`.

Written to OUT/seed_bench_r1/<split>/1.0.0/ (TFRecord shards + dataset_info.json); read back with
`tfds.builder_from_directory` (see `seedr1_jax.data`).
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import utils as tfds_utils

from data_prep.annotations import SPLIT_FILES
from seedr1_jax.models.processor import SIZE


def features(frame_format: str = "png", frame_size: int = SIZE) -> tfds.features.FeaturesDict:
    """Every field training and evaluation need. Frames and the observation are frame_size x frame_size x 3 images
    (252 by default) stored as `frame_format` (png: lossless; jpeg: quality 95); `seedr1_jax.data` decodes either
    and reads the size back from the stored features (`stored_frame_size`)."""
    img = tfds.features.Image(shape=(frame_size, frame_size, 3), encoding_format=frame_format)
    text = tfds.features.Text()
    return tfds.features.FeaturesDict(
        {
            "sample_id": text,  # str(sample_id) of the annotation ("cot_<line>" when the SFT file has none)
            "source_line": tfds.features.Scalar(np.int32),  # 1-based line in the annotation file
            "video_source": text,
            "question": text,
            "user_text": text,  # SFT only: the user text verbatim (question, options, instruction)
            "options": tfds.features.Sequence(text),  # stored order (validation/LVB); empty for train
            "golden_letter": text,  # "A".."E"; empty for train (set when options are built)
            "answer": text,  # text of the correct option
            "negative_answers": tfds.features.Sequence(text),  # train only
            "task_goal": text,
            "domain": text,  # L3 only
            "response": text,  # SFT target
            "frames": tfds.features.Sequence(img),  # 0 (image only) or an even count up to max_frames
            "frame_indices": tfds.features.Sequence(tfds.features.Scalar(np.int32)),
            "num_video_frames": tfds.features.Scalar(np.int32),
            "video_fps": tfds.features.Scalar(np.float32),
            "image": tfds.features.Sequence(img),  # 0 (LongVideoBench) or 1 current observation
            # clip frames (inclusive, the video's own numbering) showing the answer's evidence; -1 when unknown
            "evidence_start_frame": tfds.features.Scalar(np.int32),
            "evidence_stop_frame": tfds.features.Scalar(np.int32),
        }
    )


class SeedBenchR1(tfds.core.GeneratorBasedBuilder):
    """SEED-Bench-R1 (and LongVideoBench) preprocessed for Qwen2-VL: 2 fps <= 16 frames at 252x252 (or another
    `frame_size`)."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=s, description=f"split {s}") for s in SPLIT_FILES]

    @tfds_utils.classproperty
    @classmethod
    def code_path(cls):
        """No checksums file or code resources: the examples come from local files. (TFDS would otherwise look
        them up through `importlib_resources`, which its own dependencies do not install.)"""
        return None

    def __init__(self, *, examples=None, frame_format: str = "png", frame_size: int = SIZE, **kwargs):
        """examples: a zero-argument callable yielding (key, example) in a fixed order (from `prep`);
        frame_format: how frames and the observation image are stored, "png" or "jpeg"; frame_size: their side."""
        self._examples = examples
        self._frame_format = frame_format
        self._frame_size = int(frame_size)
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=features(self._frame_format, self._frame_size), homepage="https://arxiv.org/abs/2503.24376"
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        return {tfds_split(self.builder_config.name): self._generate_examples()}

    def _generate_examples(self):
        if self._examples is None:
            raise RuntimeError("SeedBenchR1 is built by `seedr1 prep`, which supplies the examples")
        yield from self._examples()


def tfds_split(split: str) -> str:
    """Our split name -> the TFDS split name inside its builder config (lowercase)."""
    return split.lower()
