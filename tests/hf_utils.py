"""Tiny random Qwen2-VL / Qwen2.5-VL models made with transformers (offline), and input builders for parity tests."""

from __future__ import annotations

import numpy as np
import torch
from transformers import (
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
)

# Two tiny configs: small vocab with custom special ids + untied head + GQA 4:2, and the real token ids
# with tied embeddings + GQA 6:1 + a different mrope split.
TINY = dict(
    a=dict(
        text=dict(
            vocab_size=320,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            rms_norm_eps=1e-6,
            bos_token_id=1,
            eos_token_id=2,
            rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0},
        ),
        vision=dict(
            depth=2,
            embed_dim=32,
            num_heads=2,
            hidden_size=64,
            mlp_ratio=2,
            patch_size=14,
            temporal_patch_size=2,
            spatial_merge_size=2,
            in_channels=3,
        ),
        ids=dict(image_token_id=300, video_token_id=301, vision_start_token_id=302, vision_end_token_id=303),
        tie=False,
    ),
    b=dict(
        text=dict(
            vocab_size=151936,
            hidden_size=48,
            intermediate_size=96,
            num_hidden_layers=3,
            num_attention_heads=6,
            num_key_value_heads=1,
            rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 1000000.0},
        ),
        vision=dict(
            depth=3,
            embed_dim=48,
            num_heads=3,
            hidden_size=48,
            mlp_ratio=4,
            patch_size=14,
            temporal_patch_size=2,
            spatial_merge_size=2,
            in_channels=3,
        ),
        ids=dict(
            image_token_id=151655,
            video_token_id=151656,
            vision_start_token_id=151652,
            vision_end_token_id=151653,
        ),
        tie=True,
    ),
)


def _qwen2_5_vl(base: str, **vision) -> dict:
    """A Qwen2.5-VL twin of TINY[base]: same decoder, a SwiGLU/RMSNorm tower with windows and absolute time."""
    spec = dict(TINY[base], family="qwen2_5_vl")
    v = spec["vision"]
    spec["vision"] = dict(
        depth=v["depth"],
        hidden_size=v["embed_dim"],
        num_heads=v["num_heads"],
        out_hidden_size=v["hidden_size"],
        patch_size=14,
        temporal_patch_size=2,
        spatial_merge_size=2,
        in_channels=3,
        hidden_act="silu",
        **vision,
    )
    return spec


# a25: 2 x 2-token windows (56 px), so 4 x 6-patch images have ragged windows; block 1 attends the whole frame.
# b25: the real ids, 112-px windows (4 x 4 tokens, as released), blocks 0 and 2 global.
TINY["a25"] = _qwen2_5_vl("a", intermediate_size=48, window_size=56, fullatt_block_indexes=[1], tokens_per_second=2)
TINY["b25"] = _qwen2_5_vl("b", intermediate_size=80, window_size=112, fullatt_block_indexes=[0, 2], tokens_per_second=4)


def _qwen3_vl(base: str, head_dim: int, section, patch: int, side: int, deepstack, **vision) -> dict:
    """A Qwen3-VL twin of TINY[base]: the q/k-norm decoder with an explicit head_dim and interleaved M-RoPE, a
    GELU-tanh tower with a side x side position table and DeepStack."""
    spec = dict(TINY[base], family="qwen3_vl")
    t = dict(spec["text"], head_dim=head_dim)
    t["rope_parameters"] = dict(t["rope_parameters"], mrope_section=list(section), mrope_interleaved=True)
    spec["text"] = t
    v = spec["vision"]
    spec["vision"] = dict(
        depth=v["depth"],
        hidden_size=v["embed_dim"],
        num_heads=v["num_heads"],
        out_hidden_size=v["hidden_size"],
        patch_size=patch,
        temporal_patch_size=2,
        spatial_merge_size=2,
        in_channels=3,
        hidden_act="gelu_pytorch_tanh",
        num_position_embeddings=side * side,
        deepstack_visual_indexes=list(deepstack),
        **vision,
    )
    return spec


# a3: head_dim 24 (not hidden / heads = 16), a 5 x 5 table, DeepStack from blocks 1 and 0 into decoder layers 0 and 1.
# b3: the real ids, patch 16, head_dim 8 (hidden / heads), a 6 x 6 table, DeepStack from block 1 only.
TINY["a3"] = _qwen3_vl("a", 24, (4, 4, 4), 14, 5, (1, 0), intermediate_size=48)
TINY["b3"] = _qwen3_vl("b", 8, (2, 1, 1), 16, 6, (1,), intermediate_size=80)
FAMILY_CLASSES = {
    "qwen2_vl": (Qwen2VLConfig, Qwen2VLForConditionalGeneration),
    "qwen2_5_vl": (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration),
    "qwen3_vl": (Qwen3VLConfig, Qwen3VLForConditionalGeneration),
}


def hf_config(name: str):
    spec = TINY[name]
    config_cls, _ = FAMILY_CLASSES[spec.get("family", "qwen2_vl")]
    return config_cls(
        text_config=dict(spec["text"]),
        vision_config=dict(spec["vision"]),
        tie_word_embeddings=spec["tie"],
        **spec["ids"],
    )


def make_hf_model(name: str, seed: int = 0, dtype=torch.float32):
    torch.manual_seed(seed)
    _, model_cls = FAMILY_CLASSES[TINY[name].get("family", "qwen2_vl")]
    model = model_cls(hf_config(name)).eval().to(dtype)
    # Random init leaves norms at 1 and biases at 0; perturb every tensor so the mapping is fully exercised.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model


def save_hf_model(name: str, path, seed: int = 0, dtype=torch.float32):
    model = make_hf_model(name, seed, dtype)
    model.save_pretrained(path)
    return model


class Prompt:
    """A token sequence with vision blocks; `add_image`/`add_video` append a block with its pixels."""

    def __init__(self, cfg: Qwen2VLConfig, rng: np.random.Generator):
        self.cfg, self.rng = cfg, rng
        self.ids: list[int] = []
        self.images, self.image_grids, self.videos, self.video_grids = [], [], [], []

    def text(self, n: int):
        self.ids += list(self.rng.integers(0, 250, size=n))
        return self

    def _pixels(self, t, h, w, sink, grids):
        v = self.cfg.vision_config
        dim = v.in_channels * v.temporal_patch_size * v.patch_size**2
        sink.append(self.rng.standard_normal((t * h * w, dim)).astype(np.float32))
        grids.append([t, h, w])

    def _block(self, pad_id, n):
        self.ids += [self.cfg.vision_start_token_id] + [pad_id] * n + [self.cfg.vision_end_token_id]

    def image(self, h, w):
        self._block(self.cfg.image_token_id, h * w // self.cfg.vision_config.spatial_merge_size**2)
        self._pixels(1, h, w, self.images, self.image_grids)
        return self

    def video(self, t, h, w):
        n = h * w // self.cfg.vision_config.spatial_merge_size**2  # tokens per temporal patch
        if self.cfg.model_type != "qwen3_vl":
            self._block(self.cfg.video_token_id, t * n)
            self._pixels(t, h, w, self.videos, self.video_grids)
            return self
        # Qwen3-VL's processor: one block per temporal patch, each after its timestamp text ("<0.5 seconds>")
        self._pixels(t, h, w, self.videos, self.video_grids)
        for _ in range(t):
            self.text(3)
            self._block(self.cfg.video_token_id, n)
        return self


def batch(cfg: Qwen2VLConfig, prompts: list[Prompt], left_pad: bool = True) -> dict:
    """Numpy inputs in transformers' layout (padded batch + mm_token_type_ids)."""
    t = max(len(p.ids) for p in prompts)
    ids = np.zeros((len(prompts), t), np.int64)
    mask = np.zeros((len(prompts), t), np.int64)
    for i, p in enumerate(prompts):
        sl = slice(t - len(p.ids), t) if left_pad else slice(0, len(p.ids))
        ids[i, sl] = p.ids
        mask[i, sl] = 1
    out = dict(input_ids=ids, attention_mask=mask)
    imgs = [x for p in prompts for x in p.images]
    vids = [x for p in prompts for x in p.videos]
    if imgs:
        out["pixel_values"] = np.concatenate(imgs)
        out["image_grid_thw"] = np.array([g for p in prompts for g in p.image_grids])
    if vids:
        out["pixel_values_videos"] = np.concatenate(vids)
        out["video_grid_thw"] = np.array([g for p in prompts for g in p.video_grids])
    return out


def torch_inputs(cfg: Qwen2VLConfig, inputs: dict) -> dict:
    """Numpy inputs -> torch tensors plus the `mm_token_type_ids` transformers 5 wants (1 image pad, 2 video pad)."""
    tt = {k: torch.from_numpy(np.asarray(v)) for k, v in inputs.items()}
    ids = tt["input_ids"]
    mm = torch.zeros_like(ids)
    mm[ids == cfg.image_token_id] = 1
    mm[ids == cfg.video_token_id] = 2
    return dict(tt, mm_token_type_ids=mm)


def hf_logits(model, inputs: dict) -> np.ndarray:
    with torch.no_grad():
        return model(**torch_inputs(model.config, inputs)).logits.float().numpy()


def per_sample_batch(ours_cfg, prompts: list[Prompt]) -> dict:
    """The training-batch layout (`Qwen2VL.embed` per-sample branch) for prompts with identical vision grids:
    pixels [B, S, L, P], hw_pos [B, S, L, 2], vision_index local to each sample; left-padded ids."""
    from seedr1_jax.models.qwen2_vl.model import per_sample_inputs

    flat = batch(prompts[0].cfg, prompts)
    return per_sample_inputs(
        ours_cfg,
        flat["input_ids"],
        flat["attention_mask"],
        [np.concatenate(p.images + p.videos) if p.images or p.videos else None for p in prompts],
        [p.image_grids for p in prompts],
        [p.video_grids for p in prompts],
    )


def tiny_video_prompts(path, *, seed: int, prompt_seed: int, n: int = 2, name: str = "b"):
    """A random tiny HF model saved at `path`, loaded as ours (fp32), and n left-padded prompts of text + a
    2x4x4 video + a 4x4 image + text. Returns (hf model, our model, prompts, per-sample batch)."""
    from seedr1_jax.models.qwen2_vl.model import Qwen2VL

    hf = save_hf_model(name, path, seed=seed)
    model = Qwen2VL.from_pretrained(str(path), dtype="float32")
    rng = np.random.default_rng(prompt_seed)
    prompts = [Prompt(hf.config, rng).text(3 + 4 * i).video(2, 4, 4).image(4, 4).text(5) for i in range(n)]
    return hf, model, prompts, per_sample_batch(model.cfg, prompts)


def tower_vs_transformers(hf, ours, p: Prompt):
    """One prompt's videos and images through transformers' tower and ours. Returns (max abs difference over the
    merged features, our tower's inputs, our raw per-segment output)."""
    from seedr1_jax.models.qwen2_vl.model import prepare_inputs

    grids = np.array(p.video_grids + p.image_grids)
    with torch.no_grad():
        ref = hf.model.visual(torch.from_numpy(np.concatenate(p.videos + p.images)), grid_thw=torch.from_numpy(grids))
    ref = ref.pooler_output.numpy()
    inputs = prepare_inputs(
        ours.cfg,
        p.ids,
        pixel_values=np.concatenate(p.images),
        image_grid_thw=p.image_grids,
        pixel_values_videos=np.concatenate(p.videos),
        video_grid_thw=p.video_grids,
    )
    feats = np.asarray(ours.visual(inputs["pixels"], inputs["hw_pos"], inputs["valid"]))
    flat = feats.reshape(-1, feats.shape[-1])
    # prepare_inputs orders images first; transformers' call above put the video first.
    idx, ids = inputs["vision_index"][0], np.array(p.ids)
    vid, img = flat[idx[ids == p.cfg.video_token_id]], flat[idx[ids == p.cfg.image_token_id]]
    err = max(np.abs(vid - ref[: len(vid)]).max(), np.abs(img - ref[len(vid) :]).max())
    return err, inputs, feats
