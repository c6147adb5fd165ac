"""The paper's frame-count question (8 / 16 / 32 frames there; missed visual cues are its main failure), at toy
scale: GRPO trained and evaluated at 2 / 4 / 8 frames per clip. `seedr1 study --arms configs/arms/frames.py`.

The study prepares its clips with the most frames an arm reads (8); each arm keeps an even number of them spread
evenly over the clip (`data.frame_sampling="uniform"`), so every arm sees the whole clip, more or less densely.
The toy base was pre-trained at 4 frames. 8 frames add 162 vision tokens, hence the longer prompt budget. Measured
at `--quick`, 5 seeds, with `scripts/study_attention.py`: docs/results.md, "Frame count".
"""


def _frames(n):
    return {"data.max_frames": n, "data.frame_sampling": "uniform", "data.max_prompt_len": 512 if n <= 4 else 768}


def get_arms():
    return dict(
        arms=[dict(name=f"GRPO-{n}f", method="grpo", overrides=_frames(n)) for n in (2, 4, 8)],
        baseline="GRPO-4f",
    )
