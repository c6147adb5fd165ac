"""Can a toy-sized Qwen2-VL learn to READ the options? (issue 20: the toy base names the colour it sees but picks
answer letters at chance, so its "Vanilla" answers one letter.)

The skill, text only: a SEED-Bench-R1-style prompt with four colour options in a random order (drawn from the
first `--words` colours), then the assistant turn `<think>The object is blue.` and what follows, in one of two
formats:
- `letter`: `</think><answer>` and the letter of the option naming that colour, the one token scored. The letter
  sits before the colour in the prompt: the model must find the option by its colour and copy what precedes it.
- `scan`: ` A is red. B is blue.</think><answer>B</answer>`, every token after the stated colour scored: the options
  are read in order (each line a copy of the prompt's, its letter the next in the alphabet), the reading stops at the
  one naming the stated colour (a comparison), and the answer is the last letter written. Each step is a forward
  copy or a local comparison, the kind of circuit a small transformer finds quickly.
A randomly initialised model of the given preset is trained (Adam, constant lr after an optional linear warm-up)
from a pool of prompts; every 100 steps it prints the share of 256 held-out prompts whose every scored token is the
argmax (for `scan`: greedy decoding writes the whole reading and the right letter). `--vocab pool` (default) takes
the softmax over the tokens the prompts use (the head's 152k-row matmul would dominate the step; the trunk is the
real one), `--vocab full` over the whole vocabulary. Measured: docs/results.md, "Reading the options".

    python scripts/probe_option_lookup.py --format scan --words 12 --lr 1e-3 --warmup 100 --steps 800
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

from data_prep.synth import read_options  # noqa: E402
from seedr1_jax.models.config import preset  # noqa: E402
from seedr1_jax.models.families import model_class  # noqa: E402
from seedr1_jax.models.processor import load_tokenizer, question_text  # noqa: E402

COLOURS = ("red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "black", "white", "grey", "cyan")
LETTERS = "ABCD"
LENGTH = 128  # tokens per prompt, left-padded (one compile)
TAIL = 24  # response tokens scored at most (format `scan`)


def model_config(name: str):
    """`toy` (the toy study's base preset) or `wide` (toy at width 256, 8 heads)."""
    if name != "wide":
        return preset(name)
    t = preset("toy")
    text = dataclasses.replace(t.text, hidden_size=256, intermediate_size=512, num_heads=8, num_kv_heads=4)
    return t.replace(vision=dataclasses.replace(t.vision, out_dim=256), text=text)


def response(fmt: str, opts, seen: str) -> str:
    """The assistant text after `<think>The object is {seen}.`: `letter` asks for the letter at once; `scan` reads
    the options in order up to the one naming the colour, then answers the last letter it wrote (each step a copy
    from the prompt or a comparison with the stated colour)."""
    letter = LETTERS[opts.index(seen)]
    if fmt == "letter":
        return f"</think><answer>{letter}"
    return f"{read_options(opts, opts.index(seen))}</think><answer>{letter}</answer>"


def prompts(tok, n: int, rng, fmt: str = "letter", words: int = 4) -> tuple[np.ndarray, ...]:
    """(input_ids, attention_mask, positions [3, n, T], targets [n, TAIL], target mask [n, TAIL]) of n random
    lookup prompts, the four options drawn from the first `words` colours; the targets are the next tokens of the
    last TAIL positions (only the letter for `letter`)."""
    chats = []
    for _ in range(n):
        opts = [COLOURS[i] for i in rng.permutation(words)[:4]]
        seen = opts[int(rng.integers(len(opts)))]
        text = question_text("Which option describes the object?", opts)
        chats.append(
            f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n<think>The object is {seen}."
            + response(fmt, opts, seen)
        )
    full = tok(chats)["input_ids"]
    prefix = tok([c[: c.index(".", c.index("<think>The object is")) + 1] for c in chats])["input_ids"]
    length = LENGTH + TAIL
    ids, mask = np.zeros((n, length), np.int32), np.zeros((n, length), np.int32)
    tgt, tmask = np.zeros((n, TAIL), np.int32), np.zeros((n, TAIL), np.float32)
    for i, (s, p) in enumerate(zip(full, prefix)):
        inp, nxt = s[:-1], s[1:]  # predict token t + 1 at position t
        ids[i, length - len(inp) :], mask[i, length - len(inp) :] = inp, 1
        n_resp = 1 if fmt == "letter" else min(len(s) - len(p), TAIL)  # `scan`: all after the stated colour
        tgt[i, TAIL - n_resp :], tmask[i, TAIL - n_resp :] = nxt[len(nxt) - n_resp :], 1
    pos = np.clip(np.cumsum(mask, 1) - 1, 0, None).astype(np.int32)
    return ids, mask, np.broadcast_to(pos, (3, n, length)).copy(), tgt, tmask


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--preset", default="toy")
    ap.add_argument("--pool", type=int, default=20000, help="training prompts drawn from")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--format", default="letter", choices=("letter", "scan"))
    ap.add_argument("--words", type=int, default=4, help="colours the options are drawn from (4 to 12)")
    ap.add_argument("--warmup", type=int, default=0, help="linear warm-up steps")
    ap.add_argument(
        "--vocab",
        default="pool",
        choices=("pool", "full"),
        help="softmax over the tokens the prompts use (cheap) or the whole 152k vocabulary (the real head)",
    )
    args = ap.parse_args()
    tok = load_tokenizer()
    cfg = model_config(args.preset)
    model = model_class(cfg)(cfg, rngs=nnx.Rngs(args.seed))
    rng = np.random.default_rng(args.seed)
    pool = prompts(tok, args.pool, rng, args.format, args.words)
    held_np = prompts(tok, 256, np.random.default_rng(10**6 + args.seed), args.format, args.words)
    used = np.unique(np.concatenate([pool[0].ravel(), pool[3].ravel(), held_np[0].ravel(), held_np[3].ravel()]))
    if args.vocab == "pool":  # targets become indices into `used`; the head reads those embedding rows only
        pool, held = (p[:3] + (np.searchsorted(used, p[3]),) + p[4:] for p in (pool, held_np))
    else:
        held = held_np
    held = [jnp.asarray(x) for x in held]
    rows = jnp.asarray(used) if args.vocab == "pool" else None
    lr = optax.linear_schedule(0.0, args.lr, args.warmup) if args.warmup else args.lr
    opt = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)

    def tail_logits(model, ids, mask, pos):
        h = model.forward(ids, pos, mask)[:, -TAIL:]
        if rows is None:
            return model.logits(h)
        return jnp.einsum("btd,vd->btv", h, model.model.embed_tokens.embedding[...][rows])

    @nnx.jit
    def step(model, opt, ids, mask, pos, target, tmask):
        def loss_fn(model):
            ce = optax.softmax_cross_entropy_with_integer_labels(tail_logits(model, ids, mask, pos), target)
            return (ce * tmask).sum() / tmask.sum()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return loss

    @nnx.jit
    def accuracy(model, ids, mask, pos, target, tmask):
        """Share of prompts whose every scored token is the argmax (= greedy decoding writes the whole target)."""
        wrong = (tail_logits(model, ids, mask, pos).argmax(-1) != target) * tmask
        return (wrong.sum(-1) == 0).mean()

    t0 = time.time()
    for s in range(1, args.steps + 1):
        ix = rng.integers(0, args.pool, args.batch)
        rows_ix = (pool[0][ix], pool[1][ix], pool[2][:, ix], pool[3][ix], pool[4][ix])
        loss = step(model, opt, *(jnp.asarray(x) for x in rows_ix))
        if s % 100 == 0 or s == args.steps:
            row = dict(step=s, loss=round(float(loss), 4), held_out=float(accuracy(model, *held)))
            print(json.dumps(dict(row, seconds=round(time.time() - t0))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
