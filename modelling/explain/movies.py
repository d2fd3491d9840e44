"""A GVR's path as a movie: each frame the overlay of the change so far with its predicted BNP,
there and back, as an animated GIF or an H.264 MP4."""

from __future__ import annotations

import numpy as np

from modelling.explain.gvr import overlay


def _frame_text(image: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    scale = max(1, 128 // image.shape[0])
    pil = Image.fromarray(np.kron(image, np.ones((scale, scale, 1), np.uint8)) if image.ndim == 3
                          else np.kron(image, np.ones((scale, scale), np.uint8)))
    ImageDraw.Draw(pil).text((3, pil.height - 13), text, fill=(255, 255, 0) if pil.mode == "RGB" else 255)
    return np.asarray(pil)


def movie_frames(frames: np.ndarray, log_bnp: np.ndarray, reference: np.ndarray, *, threshold: float) -> np.ndarray:
    """The movie's frames: the overlay of (reference - frame) with its predicted BNP, there and back, all
    on the scale of the path's largest change (so an early frame's small change looks small)."""
    largest = max((float(np.abs(reference.astype(np.float32) - f.astype(np.float32)).max()) / 255.0 for f in frames),
                  default=0.0)
    shown = [_frame_text(overlay(reference, reference, f, threshold=threshold, legend=False, scale=largest),
                         f"BNP {np.exp(b):.0f} ng/L") for f, b in zip(frames, log_bnp)]
    return np.stack(shown + shown[::-1])


def movie(frames: np.ndarray, *, kind: str) -> bytes:
    """Encode RGB frames as an animated GIF (``kind="gif"``) or an H.264 MP4 (``kind="mp4"``)."""
    import imageio.v3 as iio

    if kind == "gif":
        return iio.imwrite("<bytes>", frames, extension=".gif", duration=150, loop=0)
    if kind == "mp4":  # imageio-ffmpeg's wheel carries the ffmpeg binary
        return iio.imwrite("<bytes>", frames, extension=".mp4", fps=6, codec="libx264", macro_block_size=16)
    raise ValueError(f"kind must be 'gif' or 'mp4'; got {kind!r}")
