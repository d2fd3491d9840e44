"""GVR movies: the GIF is the one imageio writes, and encoding many at once changes no byte."""

import imageio.v3 as iio
import numpy as np
import pytest

from modelling.explain.movies import movie, movie_frames, movies


def _frame_sets(n: int, seed: int = 0) -> list[np.ndarray]:
    """There-and-back movies of a noisy picture losing a disc, with more colours than a GIF palette holds."""
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(n):
        reference = rng.integers(60, 200, (32, 32), dtype=np.uint8)
        yy, xx = np.mgrid[:32, :32]
        disc = ((yy - 16) ** 2 + (xx - 14) ** 2 < 60).astype(np.int16)
        path = np.stack([np.clip(reference - t * 40 * disc, 0, 255).astype(np.uint8) for t in np.linspace(0, 1, 5)])
        sets.append(movie_frames(path, np.log(np.linspace(900, 90, 5)), reference, threshold=0.02))
    return sets


def test_the_gif_is_imageios_to_the_byte():
    """Each distinct frame gets its palette once, yet the file is what ``iio.imwrite`` writes from all frames."""
    for frames in _frame_sets(3):
        assert len(np.unique(frames.reshape(len(frames), -1, 3)[0], axis=0)) > 256  # a palette must be chosen
        assert movie(frames, kind="gif") == iio.imwrite("<bytes>", frames, extension=".gif", duration=150, loop=0)
        decoded = iio.imread(movie(frames, kind="gif"), index=None, extension=".gif")
        assert decoded.shape[1:3] == frames.shape[1:3] and len(decoded) >= len(frames) - 1  # the turn's twin merges


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_movies_encoded_together_are_each_movie_in_order(workers):
    """More movies than the pool holds ahead: every pair comes back in order and equal to one encoded alone."""
    sets = _frame_sets(9, seed=1)
    together = list(movies(iter(sets), workers=workers))
    assert together == [(movie(f, kind="gif"), movie(f, kind="mp4")) for f in sets]
    assert len({gif for gif, _ in together}) == len(sets)  # the sets differ, so must the files


def test_a_movie_that_cannot_be_encoded_stops_the_others_with_its_error(monkeypatch):
    """The error comes out, and the movies queued behind it are not encoded after it: at most those already
    begun and the pool's window ahead."""
    import threading

    import modelling.explain.movies as movies_module

    calls, lock, real = [], threading.Lock(), movies_module.movie

    def counted(frames, *, kind):
        with lock:
            calls.append(kind)
        if frames[0, 0, 0, 0] == 7:
            raise RuntimeError("cannot encode")
        return real(frames, kind=kind)

    monkeypatch.setattr(movies_module, "movie", counted)
    sets = _frame_sets(30, seed=2)
    for frames in sets:
        frames[0, 0, 0, 0] = 8
    sets[0][0, 0, 0, 0] = 7
    with pytest.raises(RuntimeError, match="cannot encode"):
        list(movies(sets, workers=2))
    assert len(calls) <= 2 * (2 * 2 + 1)  # GIF and MP4 of at most the window of 5 movies, of 30


def test_a_gif_of_anything_but_rgb_frames_is_imageios():
    """One RGB image, grey frames, RGBA, none: not what the explain stage sends, but the bytes are still imageio's."""
    rng = np.random.default_rng(3)
    for frames in (rng.integers(0, 255, (20, 24, 3), dtype=np.uint8), rng.integers(0, 255, (5, 20, 24), dtype=np.uint8),
                   rng.integers(0, 255, (4, 20, 24, 4), dtype=np.uint8), np.zeros((0, 20, 24, 3), np.uint8)):
        assert movie(frames, kind="gif") == iio.imwrite("<bytes>", frames, extension=".gif", duration=150, loop=0)
