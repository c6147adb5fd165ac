"""The device batches the sampler, the algorithms and the update exchange: typed pytrees with shaped fields.

Host batches from `data.py` are dicts (numpy arrays plus host-only strings: sample ids, answers, prompts);
`Prompts.of` takes the model's part of one. Letters: B prompts, T prompt length, S vision segments, L patches
per segment, P patch values, N = B * G completions, C completion length.
"""

from __future__ import annotations

import flax.struct
import jax


@flax.struct.dataclass
class Prompts:
    """B prompts in the per-sample layout (`qwen2_vl.per_sample_inputs`), shardable over B.

    input_ids: int32[B, T], left-padded with <|endoftext|>.
    attention_mask: int32[B, T], 1 on real tokens.
    positions: int32[3, B, T], M-RoPE ids (temporal, height, width): batch on the SECOND dimension.
    pixels: float32[B, S, L, P] or None.
    hw_pos: int32[B, S, L, 2] or None, (row, col) of each patch.
    vision_index: int32[B, T] or None: the row of the sample's merged vision output per vision pad, -1 for text.
    """

    input_ids: jax.Array
    attention_mask: jax.Array
    positions: jax.Array
    pixels: jax.Array | None = None
    hw_pos: jax.Array | None = None
    vision_index: jax.Array | None = None

    FIELDS = ("input_ids", "attention_mask", "positions", "pixels", "hw_pos", "vision_index")

    @classmethod
    def of(cls, batch) -> Prompts:
        """The model fields of a host/device batch dict (other keys ignored), or `batch` if already Prompts."""
        if isinstance(batch, Prompts):
            return batch
        return cls(**{k: batch[k] for k in cls.FIELDS if k in batch})

    def vision(self) -> dict:
        """The vision keyword arguments of `Qwen2VL.embed` / `Qwen2VL.forward` (empty without pixels)."""
        if self.pixels is None:
            return {}
        return dict(pixels=self.pixels, hw_pos=self.hw_pos, vision_index=self.vision_index)


@flax.struct.dataclass
class GRPOBatch:
    """One GRPO optimizer batch (`grpo.prepare` -> `grpo.loss`); rows of the completions are b * G + g.

    tokens: int32[N, C] sampled completions (padding after the stop token).
    mask: int32[N, C] completion mask (through the first <|im_end|>).
    advantages: float32[N].
    inner_step: int32[] index of the optimizer step within the rollout (0 .. mu - 1).
    anchor_logp: float32[N, C] or None: the sampling policy's teacher-forced log-probs (beta > 0 or mu > 1).
    ref_logp: float32[N, C] or None: the frozen reference's (beta > 0).
    pin_anchor: bool[] or None: whether the loss pins the first inner step's log-probs to `anchor_logp`; None
      means it does (mu > 1). With mu = 1 the anchor is only needed when the policy's weights equal the
      reference's, and is then the reference's own log-probs (`grpo.logprob_fields`).
    """

    prompts: Prompts
    tokens: jax.Array
    mask: jax.Array
    advantages: jax.Array
    inner_step: jax.Array
    anchor_logp: jax.Array | None = None
    ref_logp: jax.Array | None = None
    pin_anchor: jax.Array | None = None


@flax.struct.dataclass
class SFTBatch:
    """One SFT optimizer batch (`sft.prepare` -> `sft.loss`). loss_mask: int32[B, T], 1 on trained targets."""

    prompts: Prompts
    loss_mask: jax.Array
