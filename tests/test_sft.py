"""SFT label mask, token by token, on a rendered example with the real Qwen2 tokenizer; SFT loss by hand."""

import jax.numpy as jnp
import numpy as np

from seedr1_jax.models import processor
from seedr1_jax.rl.sft import sft_example, token_cross_entropy


def test_sft_mask_token_by_token():
    tok = processor.load_tokenizer()
    question, options = "What should I do next to make tea?", ["boil water", "open fridge", "cut bread", "wash cup"]
    response = "<think>The kettle is on the counter and the cup is clean.</think><answer>A. boil water</answer>"
    p_ids, _ = processor.prompt_ids(tok, question, options, video_grid=(2, 18, 18), image_grid=(1, 18, 18))
    ids, mask = sft_example(tok, p_ids, response)
    # the same conversation rendered whole by the chat template gives the same ids
    text = processor.question_text(question, options)
    msgs = processor.messages(text, True, True) + [{"role": "assistant", "content": response}]
    full = processor.expand_vision_pads(
        processor.encode(tok, processor.render(msgs, add_generation_prompt=False)), 162, 81
    )
    assert full.tolist() == ids.tolist()
    # everything up to and including "<|im_start|>assistant\n" is masked; the rest is trained
    first = int(np.argmax(mask))
    assert mask[first:].all() and not mask[:first].any()
    assert tok.decode(ids[:first]).endswith("<|im_start|>assistant\n")
    assert tok.decode(ids[first:]) == response + "<|im_end|>\n"
    assert ids[-2] == processor.IM_END_ID and tok.decode(ids[-1:]) == "\n"
    assert (ids[:first] == processor.VIDEO_PAD_ID).sum() == 162 and (ids[:first] == processor.IMAGE_PAD_ID).sum() == 81


def test_token_cross_entropy_by_hand():
    logits = jnp.log(jnp.array([[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]]))
    targets = jnp.array([[0, 1]])
    np.testing.assert_allclose(
        token_cross_entropy(logits, targets, jnp.array([[1, 1]])), (-np.log(0.5) - np.log(0.8)) / 2, rtol=1e-6
    )
    np.testing.assert_allclose(token_cross_entropy(logits, targets, jnp.array([[0, 1]])), -np.log(0.8), rtol=1e-6)
