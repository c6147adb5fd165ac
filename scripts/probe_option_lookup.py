"""Can a toy-sized Qwen2-VL learn to READ the options? (issue 20: the toy base names the colour it sees but picks
answer letters at chance, so its "Vanilla" answers one letter.)

The plainest form of the skill, text only: a SEED-Bench-R1-style prompt with four colour options in a random order,
then the assistant turn `<think>The object is blue.</think><answer>` and the target letter of the option naming that
colour. A randomly initialised model of the given preset is trained on that letter alone (plain Adam, constant
lr, loss on the one answer position, logits only there) from a fixed pool of prompts; held-out accuracy on 256
other prompts is printed every 100 steps (chance 25%, loss ln 4 = 1.386). No video, no vocabulary projection over the
sequence: each step costs little, so what it shows is whether the architecture and optimiser find the lookup at all.

    python scripts/probe_option_lookup.py --lr 3e-3 --steps 2000 [--preset toy | wide] [--batch 32]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

from seedr1_jax.models.config import preset  # noqa: E402
from seedr1_jax.models.families import model_class  # noqa: E402
from seedr1_jax.models.processor import load_tokenizer, question_text  # noqa: E402

COLOURS = ("red", "green", "blue", "yellow")
LETTERS = "ABCD"
LENGTH = 128  # tokens per prompt, left-padded (one compile)


def model_config(name: str):
    """`toy` (the toy study's base preset) or `wide` (toy at width 256, 8 heads)."""
    if name != "wide":
        return preset(name)
    t = preset("toy")
    text = dataclasses.replace(t.text, hidden_size=256, intermediate_size=512, num_heads=8, num_kv_heads=4)
    return t.replace(vision=dataclasses.replace(t.vision, out_dim=256), text=text)


def prompts(tok, n: int, rng) -> tuple[np.ndarray, ...]:
    """(input_ids, attention_mask, positions [3, n, T], target token ids) of n random lookup prompts."""
    letter_ids = [tok(x)["input_ids"][0] for x in LETTERS]
    chats, targets = [], []
    for _ in range(n):
        opts = [COLOURS[i] for i in rng.permutation(len(COLOURS))]
        seen = opts[int(rng.integers(len(opts)))]
        text = question_text("Which option describes the object?", opts)
        chats.append(
            f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n<think>The object is {seen}.</think><answer>"
        )
        targets.append(letter_ids[opts.index(seen)])
    seqs = tok(chats)["input_ids"]
    ids, mask = np.zeros((n, LENGTH), np.int32), np.zeros((n, LENGTH), np.int32)
    for i, s in enumerate(seqs):
        ids[i, LENGTH - len(s) :], mask[i, LENGTH - len(s) :] = s, 1
    pos = np.clip(np.cumsum(mask, 1) - 1, 0, None).astype(np.int32)
    return ids, mask, np.broadcast_to(pos, (3, n, LENGTH)).copy(), np.asarray(targets, np.int32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--preset", default="toy")
    ap.add_argument("--pool", type=int, default=20000, help="training prompts drawn from")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    tok = load_tokenizer()
    cfg = model_config(args.preset)
    model = model_class(cfg)(cfg, rngs=nnx.Rngs(args.seed))
    rng = np.random.default_rng(args.seed)
    pool = prompts(tok, args.pool, rng)
    held = [jnp.asarray(x) for x in prompts(tok, 256, np.random.default_rng(10**6 + args.seed))]
    opt = nnx.Optimizer(model, optax.adam(args.lr), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt, ids, mask, pos, target):
        def loss_fn(model):
            logits = model.logits(model.forward(ids, pos, mask)[:, -1])
            return optax.softmax_cross_entropy_with_integer_labels(logits, target).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return loss

    @nnx.jit
    def accuracy(model, ids, mask, pos, target):
        return (model.logits(model.forward(ids, pos, mask)[:, -1]).argmax(-1) == target).mean()

    t0 = time.time()
    for s in range(1, args.steps + 1):
        ix = rng.integers(0, args.pool, args.batch)
        loss = step(model, opt, *(jnp.asarray(x) for x in (pool[0][ix], pool[1][ix], pool[2][:, ix], pool[3][ix])))
        if s % 100 == 0 or s == args.steps:
            row = dict(step=s, loss=round(float(loss), 4), held_out=float(accuracy(model, *held)))
            print(json.dumps(dict(row, seconds=round(time.time() - t0))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
