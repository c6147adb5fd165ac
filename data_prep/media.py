"""Decode one sample's media (decord for video, PIL for images), sample frames, resize to 252x252, encode (PNG).

Runs in the prep worker processes; imports neither TensorFlow nor JAX.
"""

from __future__ import annotations

import io

import numpy as np

from data_prep.annotations import BadSample
from seedr1_jax.models.processor import SIZE, frame_indices, resize

JPEG_QUALITY = 95
FRAME_FORMATS = ("png", "jpeg")  # png (default): lossless; jpeg: ~3x smaller, mean error ~1.4 (README)


def encode(img: np.ndarray, fmt: str = "png") -> bytes:
    """uint8[H, W, 3] -> PNG bytes (lossless) or JPEG bytes (quality 95, 4:4:4 so colours survive)."""
    from PIL import Image

    buf = io.BytesIO()
    if fmt == "png":
        # zlib level 1: 2.4x faster to write than PIL's default 6 for ~15% more bytes (prep is CPU-bound)
        Image.fromarray(img).save(buf, format="PNG", compress_level=1)
    elif fmt == "jpeg":
        Image.fromarray(img).save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    else:
        raise ValueError(f"frame format {fmt!r}: choose one of {', '.join(FRAME_FORMATS)}")
    return buf.getvalue()


def import_decord():
    """decord, loaded without making its bundled FFmpeg/libpng symbols global.

    decord `dlopen`s its library with RTLD_GLOBAL; its libpng then takes over TensorFlow's, and every PNG decode
    in the same process fails ("Invalid PNG. Failed to initialize decoder") once decord was imported before
    TensorFlow. Import decord through this function wherever TensorFlow may run later in the process.
    """
    import ctypes
    import sys

    if "decord" not in sys.modules:
        flag = ctypes.RTLD_GLOBAL
        ctypes.RTLD_GLOBAL = ctypes.RTLD_LOCAL
        try:
            import decord  # noqa: F401
        finally:
            ctypes.RTLD_GLOBAL = flag
    return sys.modules["decord"]


def read_video(path: str, max_frames: int = 16, size: int = SIZE):
    """Sampled, resized frames of a clip: (uint8[n, size, size, 3], int64[n] indices, total_frames, fps)."""
    decord = import_decord()

    try:
        vr = decord.VideoReader(path, num_threads=1)
        total, fps = len(vr), float(vr.get_avg_fps())
    except Exception as e:  # decord raises its own error types for corrupt containers
        if _frame_count(path) == 0:
            raise BadSample("video has zero frames") from None
        raise BadSample(f"corrupt or truncated video (unreadable): {type(e).__name__}: {str(e)[:200]}") from None
    if total == 0:
        raise BadSample("video has zero frames")
    try:
        idx = frame_indices(total, fps, max_frames=max_frames)
    except ValueError as e:
        raise BadSample(f"video cannot be sampled: {e}") from None
    try:
        raw = vr.get_batch(idx.tolist()).asnumpy()
    except Exception as e:
        raise BadSample(f"corrupt or truncated video: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    if raw.ndim != 4 or raw.shape[0] != len(idx):
        raise BadSample(f"corrupt or truncated video: decoded {raw.shape} for {len(idx)} frames")
    return np.stack([resize(f, size) for f in raw]), idx, total, fps


def _frame_count(path: str):
    """Frames PyAV can decode from a container decord refused (0 for a valid container without any video
    frames), or None when PyAV cannot read it either."""
    import av

    try:
        with av.open(path) as c:
            if not c.streams.video:
                return 0
            return sum(1 for _ in c.decode(video=0))
    except Exception:
        return None


def to_rgb(im):
    """PIL image -> RGB PIL image; RGBA is composited onto white, as qwen-vl-utils' `to_rgb` does (other modes
    are converted by PIL, dropping any transparency, also as there)."""
    from PIL import Image

    if im.mode == "RGBA":
        white = Image.new("RGB", im.size, (255, 255, 255))
        white.paste(im, mask=im.split()[3])
        return white
    return im.convert("RGB")


def read_image(path: str, size: int = SIZE) -> np.ndarray:
    """uint8[size, size, 3] observation image (RGBA composited onto white)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(to_rgb(im))
    except Exception as e:
        raise BadSample(f"unreadable image: {type(e).__name__}: {e}") from None
    return resize(arr, size)


def decode_item(item: dict, max_frames: int = 16, fmt: str = "png", size: int = SIZE) -> dict:
    """Work item -> example dict with encoded `size`-pixel frames/image (`fmt`: png or jpeg bytes) and frame
    metadata; raises BadSample."""
    out = {k: v for k, v in item.items() if k not in ("video", "image", "line", "file")}
    out.update(frames=[], frame_indices=np.zeros((0,), np.int32), num_video_frames=0, video_fps=0.0, image=[])
    if item.get("video"):
        frames, idx, total, fps = read_video(item["video"], max_frames, size)
        out.update(frames=[encode(f, fmt) for f in frames], frame_indices=idx.astype(np.int32))
        out.update(num_video_frames=int(total), video_fps=float(fps))
    if item.get("image"):
        out["image"] = [encode(read_image(item["image"], size), fmt)]
    return out


def decode_or_reason(args):
    """Pool entry point: (index, item, max_frames, fmt, size) -> (index, example or None, reason or None)."""
    i, item, max_frames, fmt, size = args
    try:
        return i, decode_item(item, max_frames, fmt, size), None
    except BadSample as e:
        return i, None, str(e)
    except Exception as e:  # anything else in one sample must not kill the run
        return i, None, f"unexpected error: {type(e).__name__}: {e}"
