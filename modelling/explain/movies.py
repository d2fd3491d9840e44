"""A GVR's path as a movie: each frame the overlay of the change so far with its predicted BNP,
there and back, as an animated GIF or an H.264 MP4."""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

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
                         f"pred. BNP {np.exp(b):.0f} ng/L") for f, b in zip(frames, log_bnp)]
    return np.stack(shown + shown[::-1])


def movie(frames: np.ndarray, *, kind: str) -> bytes:
    """Encode RGB frames as an animated GIF (``kind="gif"``) or an H.264 MP4 (``kind="mp4"``)."""
    import imageio.v3 as iio

    if kind == "gif":
        return _gif(frames)
    if kind == "mp4":  # imageio-ffmpeg's wheel carries the ffmpeg binary
        return iio.imwrite("<bytes>", frames, extension=".mp4", fps=6, codec="libx264", macro_block_size=16)
    raise ValueError(f"kind must be 'gif' or 'mp4'; got {kind!r}")


def _gif(frames: np.ndarray) -> bytes:
    """The bytes imageio writes for ``iio.imwrite(..., extension=".gif", duration=150, loop=0)``, with each
    distinct frame given its palette once: a GVR movie plays there and back, so every frame but the turn
    comes twice, and the palette (median cut, Pillow's ADAPTIVE) was most of the time spent on a movie."""
    import imageio.v3 as iio
    from PIL import Image

    frames = np.asarray(frames)
    if not (frames.ndim == 4 and frames.shape[-1] == 3 and frames.dtype == np.uint8 and len(frames)):
        # not a batch of RGB frames (one image, grey, RGBA, none): whatever imageio makes of it
        return iio.imwrite("<bytes>", frames, extension=".gif", duration=150, loop=0)
    paletted: dict[bytes, Image.Image] = {}
    shown = []
    for frame in np.ascontiguousarray(frames):
        key = frame.tobytes()
        if key not in paletted:
            image = Image.fromarray(frame)
            paletted[key] = image.convert("P", palette=Image.Palette.ADAPTIVE)
        shown.append(paletted[key])
    out = io.BytesIO()
    shown[0].save(out, format="GIF", save_all=True, append_images=shown[1:], duration=150, loop=0)
    return out.getvalue()


def movies(frame_sets: Iterable[np.ndarray], *, workers: int | None = None) -> Iterator[tuple[bytes, bytes]]:
    """(GIF, MP4) of each set of frames, in order, encoded `workers` at a time (default: torch's thread
    count). Pillow's palettes run without the GIL and ffmpeg in a process of its own, so two GVRs' movies
    encode in about the time of one; the bytes are those of :func:`movie`."""
    import torch

    def both(frames: np.ndarray) -> tuple[bytes, bytes]:
        return movie(frames, kind="gif"), movie(frames, kind="mp4")

    workers = max(1, workers if workers is not None else torch.get_num_threads())
    if workers == 1:
        yield from map(both, frame_sets)
        return
    pool = ThreadPoolExecutor(workers)
    try:
        pending: deque = deque()
        for frames in frame_sets:  # a few movies ahead, not every GVR's frames in memory at once
            pending.append(pool.submit(both, frames))
            if len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:  # an error, or a caller that stops early: the movies not yet begun are not encoded
        pool.shutdown(wait=True, cancel_futures=True)
