"""Figures of `seedr1 attention`: attention heatmaps over the frames and image, per-token attention shares."""

from __future__ import annotations

import numpy as np


def heat_to_pixels(heat, cell: int, temporal: int = 2):
    """float[t, hm, wm] merged-grid heat -> float[t * temporal, hm * cell, wm * cell] per frame (cell = m *
    patch_size pixels per merged token; both frames of a temporal patch share its tokens, so its heat)."""
    px = np.kron(np.asarray(heat), np.ones((1, cell, cell)))
    return np.repeat(px, temporal, axis=0)


def _fmt(x, pct=True):
    return "n/a" if x is None else (f"{100 * x:.1f}%" if pct else f"{x:.2f}")


def _save(fig, path) -> None:
    import warnings

    import matplotlib.pyplot as plt

    with warnings.catch_warnings():  # decoded tokens may hold glyphs the default font lacks
        warnings.filterwarnings("ignore", message="Glyph .* missing")
        fig.tight_layout()
        fig.savefig(path, dpi=80)
    plt.close(fig)


def draw_heat_grid(path, frames, image, results: dict, span: str, cell: int) -> None:
    """PNG: one row per model, the frames (uint8[F, H, W, 3] or None) and the observation image (uint8[H, W, 3]
    or None), each with the `span` tokens' attention overlaid (one colour scale for the whole figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("video", i) for i in range(0 if frames is None else len(frames))] + (
        [("image", 0)] if image is not None else []
    )
    maps = {}
    for label, r in results.items():
        h = r["heat"][span]
        vid = heat_to_pixels(np.asarray(h["video"]), cell) if "video" in h else None
        img = heat_to_pixels(np.asarray(h["image"]), cell, temporal=1)[0] if "image" in h else None
        maps[label] = [vid[i] if kind == "video" else img for kind, i in panels]
    vmax = max([float(m.max()) for ms in maps.values() for m in ms] + [1e-12])
    nr, nc = len(results), max(1, len(panels))
    fig, axes = plt.subplots(nr, nc, figsize=(1.6 * nc + 0.6, 1.8 * nr + 0.4), squeeze=False)
    for r, (label, res) in enumerate(results.items()):
        m = res["metrics"][span]
        for c, (kind, i) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(frames[i] if kind == "video" else image)
            if m["tokens"]:
                ax.imshow(maps[label][c], cmap="inferno", alpha=0.55, vmin=0, vmax=vmax)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(f"frame {i}" if kind == "video" else "observation", fontsize=8)
        head = f"{label}\n{m['tokens']} tok, vis {_fmt(m['visual'])}" if m["tokens"] else f"{label}\nno {span} span"
        axes[r, 0].set_ylabel(head, fontsize=7)
    fig.suptitle(f"attention of the {span} tokens (shared scale, max {vmax:.2g} per merged patch)", fontsize=9)
    _save(fig, path)


def draw_token_shares(path, results: dict) -> None:
    """PNG: per model, stacked bars of each generated token's attention mass on video / image / text."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max([len(r["labels"]) for r in results.values()] + [1])
    fig, axes = plt.subplots(
        len(results), 1, figsize=(min(60, max(6, 2 + 0.18 * n)), 2.6 * len(results)), squeeze=False
    )
    for ax, (label, r) in zip(axes[:, 0], results.items()):
        s = np.asarray(r["shares"]).reshape(-1, 3)
        x = np.arange(len(s))
        colours = {}
        for span, colour, tag in (("reasoning", "#27ae60", "<think>"), ("answer", "#f39c12", "<answer>")):
            idx = r["spans"][span]
            ax.bar(idx, 0.05, bottom=1.01, width=1.0, color=colour, label=tag)
            colours.update(dict.fromkeys(idx, colour))
        ax.bar(x, s[:, 2], color="#c0392b", label="video")
        ax.bar(x, s[:, 1], bottom=s[:, 2], color="#2980b9", label="image")
        ax.bar(x, s[:, 0], bottom=s[:, 2] + s[:, 1], color="#bbbbbb", label="text")
        ax.set_xticks(x, [repr(t)[1:-1] for t in r["labels"]], rotation=90, fontsize=6)
        for i, tick in enumerate(ax.get_xticklabels()):
            tick.set_color(colours.get(i, "black"))
        ax.set_xlim(-0.5, n - 0.5), ax.set_ylim(0, 1.07)
        ax.set_ylabel(f"{label}\nattention share", fontsize=7)
        ax.legend(fontsize=6, loc="lower right", ncol=5)
    axes[0, 0].set_title(
        "attention share per generated token (top strip: <think> / <answer> content)",
        fontsize=9,
    )
    _save(fig, path)
