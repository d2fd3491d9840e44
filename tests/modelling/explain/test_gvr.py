"""GVRs by their properties on toy models with a known answer (STYLE.md 8)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from modelling.explain.gvr import ORANGE, PURPLE, move, overlay, shorten
from tests.modelling.explain.toy_models import SIZE, ToyDecoder


class LinearPredictor(nn.Module):
    def __init__(self, w: torch.Tensor, b: float):
        super().__init__()
        self.w, self.b = nn.Parameter(w), nn.Parameter(torch.tensor(b))

    def forward(self, z):
        return z @ self.w + self.b


def heart_only(z_dim=4):
    w = torch.zeros(z_dim)
    w[0] = 2.0  # log BNP grows with heart size only
    return ToyDecoder(), LinearPredictor(w, 5.0)


def test_a_zero_move_reproduces_the_reconstruction():
    decoder, predictor = heart_only()
    start = np.full((3, 4), -1.0, np.float32)  # log BNP 3 < log 100: already healthy
    path = move(start, decoder, predictor, target_log_bnp=np.log(100), direction="down")
    np.testing.assert_array_equal(path.end, start)
    assert path.steps.tolist() == [0, 0, 0] and path.reached.all()
    with torch.no_grad():
        image = ((decoder(torch.from_numpy(start))[0, 0] + 1) * 127.5).round().byte().numpy()
    shown = overlay(image, image, image, legend=False)
    np.testing.assert_array_equal(shown, np.repeat(image[..., None], 3, axis=-1))


def test_the_prediction_moves_the_requested_way_and_reaches_the_target():
    decoder, predictor = heart_only()
    start = np.array([[1.0, 0.0, 0.3, -0.2], [1.5, 0.5, 0.0, 0.0]], np.float32)  # log BNP 7, 8
    down = move(start, decoder, predictor, target_log_bnp=np.log(100), direction="down", max_steps=500)
    assert down.reached.all() and (down.end_log_bnp < np.log(100)).all()
    assert (down.end_log_bnp > np.log(100) - 0.05).all()  # lands just past the target, not far beyond
    assert (down.steps > 0).all()
    assert (down.end[:, 0] < start[:, 0]).all()  # the heart shrinks
    np.testing.assert_allclose(down.end[:, 2:], start[:, 2:], atol=1e-6)  # what the predictor ignores stays
    up = move(down.end, decoder, predictor, target_log_bnp=np.log([1000.0, 4000.0]), direction="up", max_steps=500)
    assert up.reached.all() and (up.end_log_bnp >= np.log([1000.0, 4000.0])).all()
    assert len(down.frames) >= 2 and np.allclose(down.frames[0], start) and np.allclose(down.frames[-1], down.end)


def test_the_change_lies_in_the_heart_when_bnp_depends_only_on_heart_size():
    decoder, predictor = heart_only()
    start = np.array([[1.2, 0.4, 0.0, 0.0]], np.float32)
    path = move(start, decoder, predictor, target_log_bnp=np.log(100), direction="down", max_steps=500,
                similarity_weight=1.0)
    with torch.no_grad():
        diseased = decoder(torch.from_numpy(path.start))[0, 0].numpy()
        healthy = decoder(torch.from_numpy(path.end))[0, 0].numpy()
    change = np.abs(diseased - healthy)
    g = (np.arange(SIZE) + 0.5) / SIZE * 2 - 1
    yy, xx = np.meshgrid(g, g, indexing="ij")
    heart = np.sqrt(xx**2 + (yy - 0.2) ** 2) < 0.35 + 0.08 * 1.2 + 0.1  # the diseased disc, dilated
    assert change[heart].sum() / change.sum() > 0.95


def test_a_target_not_reached_is_recorded_with_the_closest_value():
    decoder, predictor = heart_only()
    start = np.array([[3.0, 0, 0, 0]], np.float32)  # log BNP 11
    path = move(start, decoder, predictor, target_log_bnp=np.log(100), direction="down", max_steps=3, step_size=0.01)
    assert not path.reached[0] and path.steps[0] == 3
    assert np.log(100) < path.end_log_bnp[0] < path.start_log_bnp[0]


def test_bad_input_is_refused():
    decoder, predictor = heart_only()
    with pytest.raises(ValueError, match="NaN"):
        move(np.array([[np.nan, 0, 0, 0]], np.float32), decoder, predictor, target_log_bnp=1.0, direction="down")
    with pytest.raises(ValueError, match="direction must be 'down' or 'up'"):
        move(np.zeros((1, 4), np.float32), decoder, predictor, target_log_bnp=1.0, direction="sideways")


def test_overlay_colours_have_the_documented_signs():
    original = np.full((16, 16), 100, np.uint8)
    diseased = original.copy()
    healthy = original.copy()
    diseased[2:6, 2:6] = 200  # density removed on the way to healthy: orange
    healthy[10:14, 10:14] = 200  # density added: purple
    healthy[0, 15] = 102  # below the threshold: left as it was
    out = overlay(original, diseased, healthy, threshold=0.02, legend=False).astype(int)
    removed, added = out[3, 3], out[12, 12]
    assert np.linalg.norm(removed - np.array(ORANGE)) < np.linalg.norm(removed - np.array(PURPLE))
    assert np.linalg.norm(added - np.array(PURPLE)) < np.linalg.norm(added - np.array(ORANGE))
    assert out[0, 15].tolist() == [100, 100, 100] and out[8, 8].tolist() == [100, 100, 100]
    with_legend = overlay(original, diseased, healthy)
    assert with_legend[0:2, 0:2].tolist() == out[0:2, 0:2].tolist()  # legend sits below the first pixels
    assert (with_legend == np.array(ORANGE, np.uint8)).all(axis=-1).any()


def test_pattern_moves_follow_the_covariance_times_the_gradient():
    """For a linear predictor w and codes of covariance S, a pattern move goes along S w (Haufe et al.
    2014), a gradient move along w; with correlated codes the two differ, as they should."""
    decoder, _ = heart_only()
    w = torch.tensor([1.0, 0.0, 0.0, 0.0])
    predictor = LinearPredictor(w, 5.0)
    cov = np.array([[1.0, 0.8, 0, 0], [0.8, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 0.5]])
    start = np.array([[2.0, 0.0, 0.0, 0.0]], np.float32)  # log BNP 7
    pattern = move(start, decoder, predictor, target_log_bnp=np.log(100), direction="down", max_steps=500,
                   similarity_weight=0.0, covariance=cov)
    gradient = move(start, decoder, predictor, target_log_bnp=np.log(100), direction="down", max_steps=500,
                    similarity_weight=0.0)
    assert pattern.reached.all() and gradient.reached.all()
    step = pattern.end[0] - start[0]
    expected = -(cov @ w.numpy())
    cosine = step @ expected / np.linalg.norm(step) / np.linalg.norm(expected)
    assert cosine > 0.999
    assert abs(gradient.end[0, 1] - start[0, 1]) < 1e-6  # the gradient leaves z[1] alone; the pattern moves it
    assert pattern.end[0, 1] < start[0, 1] - 0.5


class LinearDecoder(nn.Module):
    """z -> A z as an 8 x 8 picture: its Jacobian is A everywhere."""

    def __init__(self, a: torch.Tensor):
        super().__init__()
        self.a = nn.Parameter(a)

    def forward(self, z):
        return (z @ self.a.T).reshape(-1, 1, 8, 8)


def test_metric_moves_descend_steepest_in_the_pictures_distance():
    """With a linear decoder A, a metric move goes along (A^T A + ridge I)^-1 times the gradient: the
    steepest descent when distance is measured between decoded pictures. Each step changes the picture by
    step_size per pixel (root mean square), and the path stops within a step of where it crosses."""
    torch.manual_seed(0)
    a = torch.randn(64, 4) * torch.tensor([3.0, 1.0, 0.3, 0.1])  # directions the decoder draws large and small
    decoder = LinearDecoder(a)
    w = torch.tensor([1.0, 1.0, 1.0, 1.0])
    predictor = LinearPredictor(w, 5.0)
    start = np.array([[1.0, 0.5, 0.5, 0.5]], np.float32)  # log BNP 7.5
    ridge = 0.3
    path = move(start, decoder, predictor, target_log_bnp=np.log(100), direction="down", max_steps=500,
                similarity_weight=0.0, metric_ridge=ridge, step_size=0.05)
    assert path.reached.all() and path.steps[0] > 3
    metric = (a.T @ a).double().numpy()
    expected = -np.linalg.solve(metric + ridge * np.trace(metric) / 4 * np.eye(4), w.numpy())
    step = path.end[0] - start[0]
    assert step @ expected / np.linalg.norm(step) / np.linalg.norm(expected) > 0.999
    gradient = -w.numpy()
    assert step @ gradient / np.linalg.norm(step) / np.linalg.norm(gradient) < 0.9  # not the gradient's way
    # with a vanishing ridge, the change in the picture grows by step_size * sqrt(pixels) a step
    fine = move(start, decoder, predictor, target_log_bnp=np.log(100), direction="down", max_steps=500,
                similarity_weight=0.0, metric_ridge=1e-9, step_size=0.05)
    with torch.no_grad():
        moved = float((decoder(torch.from_numpy(fine.end)) - decoder(torch.from_numpy(start))).norm())
    length = 0.05 * 64 ** 0.5
    assert (fine.steps[0] - 1) * length < moved <= fine.steps[0] * length * (1 + 1e-4)


def test_metric_moves_take_what_costs_the_picture_least():
    """A model that reads the heart's size and the marker's brightness alike: a metric move changes the
    small marker, which lowers the prediction as much for far fewer changed pixels; a gradient move
    changes both by the same amount in the code, and the large heart then carries most of the picture's
    change."""
    decoder = ToyDecoder()
    predictor = LinearPredictor(torch.tensor([1.0, 1.0, 0.0, 0.0]), 5.0)
    start = np.array([[1.2, 1.0, 0.0, 0.0]], np.float32)
    g = (np.arange(SIZE) + 0.5) / SIZE * 2 - 1
    yy, xx = np.meshgrid(g, g, indexing="ij")
    marker = (xx + 0.7) ** 2 + (yy + 0.7) ** 2 < 0.02 * 9
    shares = {}
    for name, ridge in (("gradient", None), ("metric", 1e-3)):
        path = move(start, decoder, predictor, target_log_bnp=np.log(500), direction="down", max_steps=2000,
                    similarity_weight=0.0, metric_ridge=ridge)
        assert path.reached.all()
        with torch.no_grad():
            change = np.abs(decoder(torch.from_numpy(path.start))[0, 0].numpy()
                            - decoder(torch.from_numpy(path.end))[0, 0].numpy())
        shares[name] = change[marker].sum() / change.sum()
    assert shares["metric"] > 0.75 > 0.25 > shares["gradient"]


def test_the_pullback_metric_is_the_decoders_jacobian_squared(monkeypatch, caplog):
    """However the codes and directions are split to bound memory, and by double backward where a decoder
    has no forward-mode rule."""
    import modelling.explain.gvr as gvr

    decoder = ToyDecoder()
    z = torch.tensor([[1.2, 0.4, 0.0, 0.0], [0.3, -0.5, 1.0, 2.0], [0.0, 1.0, 0.0, 0.0]])
    expected = []
    for k in range(len(z)):
        jac = torch.autograd.functional.jacobian(lambda c: decoder(c[None]).flatten(), z[k]).double()
        expected.append((jac.T @ jac).numpy())
    np.testing.assert_allclose(gvr.pullback_metric(decoder, z).numpy(), expected, rtol=1e-5, atol=1e-8)
    for budget in (SIZE * SIZE, 3 * SIZE * SIZE):  # one tangent at a time; three, across codes unevenly
        monkeypatch.setattr(gvr, "TANGENT_PIXELS", budget)
        np.testing.assert_allclose(gvr.pullback_metric(decoder, z).numpy(), expected, rtol=1e-5, atol=1e-8)

    def no_forward_mode(*args, **kwargs):
        raise NotImplementedError("no forward AD for this layer")

    monkeypatch.setattr(torch.func, "jvp", no_forward_mode)
    monkeypatch.setattr(gvr.pullback_metric, "_warned", False, raising=False)  # said once a process
    with caplog.at_level("WARNING", logger="modelling.explain.gvr"):
        np.testing.assert_allclose(gvr.pullback_metric(decoder, z).numpy(), expected, rtol=1e-5, atol=1e-8)
    assert "double backward" in caplog.text
    assert gvr.pullback_metric(decoder, z[:0]).shape == (0, 4, 4)


def test_a_metric_move_of_no_codes_or_of_codes_already_past_is_no_move():
    decoder, predictor = heart_only()
    empty = move(np.zeros((0, 4), np.float32), decoder, predictor, target_log_bnp=np.log(100), direction="down",
                 metric_ridge=0.3)
    assert empty.end.shape == (0, 4)
    start = np.array([[-1.0, 0, 0, 0], [1.0, 0, 0, 0]], np.float32)  # log BNP 3 (already past) and 7
    path = move(start, decoder, predictor, target_log_bnp=np.log(100), direction="down", metric_ridge=0.3,
                max_steps=500)
    assert path.steps[0] == 0 and (path.end[0] == start[0]).all() and path.steps[1] > 0 and path.reached.all()


def test_a_metric_move_is_refused_with_a_covariance_or_a_ridge_that_is_not_positive():
    decoder, predictor = heart_only()
    start = np.ones((1, 4), np.float32)
    with pytest.raises(ValueError, match="not both"):
        move(start, decoder, predictor, target_log_bnp=1.0, direction="down", covariance=np.eye(4), metric_ridge=0.3)
    for ridge in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="metric_ridge must be positive"):
            move(start, decoder, predictor, target_log_bnp=1.0, direction="down", metric_ridge=ridge)


def test_a_covariance_of_the_wrong_shape_is_refused():
    decoder, predictor = heart_only()
    with pytest.raises(ValueError, match="covariance must be a finite 4 x 4 matrix; got shape \\(3, 3\\)"):
        move(np.ones((1, 4), np.float32), decoder, predictor, target_log_bnp=1.0, direction="down",
             covariance=np.eye(3))


def test_the_change_lies_on_the_marker_when_bnp_depends_only_on_the_marker():
    """A model that learned a shortcut: log BNP follows only the brightness of a corner marker (z[1]);
    its GVR must change the marker, not the heart (issue 16's toy check).

    Pattern moves change the marker alone. The paper's Adam steps leak: Adam divides each coordinate's
    step by its own gradient scale, so float noise in the gradient of z[0] (which the model ignores)
    still moves it a step's length at a time, and the large heart disc then carries about an eighth of
    the change."""
    decoder = ToyDecoder()
    w = torch.zeros(4)
    w[1] = 2.0
    predictor = LinearPredictor(w, 5.0)
    start = np.array([[1.2, 1.0, 0.0, 0.0]], np.float32)  # log BNP 7: a big heart and a bright marker
    g = (np.arange(SIZE) + 0.5) / SIZE * 2 - 1
    yy, xx = np.meshgrid(g, g, indexing="ij")
    marker = (xx + 0.7) ** 2 + (yy + 0.7) ** 2 < 0.02 * 9  # the Gaussian blob, out to three of its widths
    shares = {}
    for name, covariance in (("gradient", None), ("pattern", np.eye(4))):
        path = move(start, decoder, predictor, target_log_bnp=np.log(100), direction="down", max_steps=500,
                    covariance=covariance)
        assert path.reached.all()
        with torch.no_grad():
            diseased = decoder(torch.from_numpy(path.start))[0, 0].numpy()
            healthy = decoder(torch.from_numpy(path.end))[0, 0].numpy()
        change = np.abs(diseased - healthy)
        shares[name] = change[marker].sum() / change.sum()
    assert shares["pattern"] > 0.99
    assert shares["gradient"] > 0.8


class SoftEncoder(nn.Module):
    """A differentiable inverse of ToyDecoder's heart: the disc's radius from its soft area; the other
    coordinates come back 0 (the picture does not draw them)."""

    def forward(self, x):
        from tests.modelling.explain.toy_models import heart_region

        unit = (x[:, 0] + 1) / 2
        area = (unit * heart_region(x.shape[-1]).to(x.dtype)).sum(dim=(1, 2)) * (2.0 / x.shape[-1]) ** 2
        z0 = (torch.sqrt(area / torch.pi) - 0.35) / 0.08
        return torch.stack([z0, torch.zeros_like(z0), torch.zeros_like(z0), torch.zeros_like(z0)], dim=1)


def test_a_reencoded_move_changes_what_the_model_sees_in_the_picture():
    """The predictor reads the heart (z[0]) and a coordinate the decoder never draws (z[2]). Moved on the
    code, half the fall comes from z[2]: the healthy picture, encoded again, is still predicted above
    the target. Moved through decoder, encoder and predictor, only the heart changes, and the picture
    itself is predicted healthy."""
    from modelling.explain.gvr import Reencoded, aim, scorer

    decoder, encoder = ToyDecoder(), SoftEncoder()
    predictor = LinearPredictor(torch.tensor([1.0, 0.0, 1.0, 0.0]), 5.0)
    start = np.array([[1.2, 0.0, 0.0, 0.0]], np.float32)
    seen = Reencoded(predictor, encoder, decoder)
    with torch.no_grad():
        assert float(seen(torch.from_numpy(start))) == pytest.approx(6.2, abs=0.1)  # the encoder inverts the heart
    target = np.log(100)
    results = {}
    for reencode in (False, True):
        path = move(start, decoder, scorer(predictor, reencode=reencode, encoder=encoder, decoder=decoder),
                    target_log_bnp=aim(target, "down", 0.05), direction="down", step_size=0.05, max_steps=500,
                    similarity_weight=0.0)
        assert path.reached.all()
        with torch.no_grad():
            results[reencode] = (path.end[0], float(seen(torch.from_numpy(path.end))))
    (code_end, code_seen), (pic_end, pic_seen) = results[False], results[True]
    assert code_end[2] < -0.3 and code_seen > target  # half the move is invisible; the picture stays diseased
    assert abs(pic_end[2]) < 1e-6 and pic_seen < target  # only the heart moved, and the picture reads healthy
    assert scorer(predictor, reencode=False) is predictor
    with pytest.raises(ValueError, match="gvr.reencode needs the encoder and the decoder"):
        scorer(predictor, reencode=True)
    np.testing.assert_allclose(aim([1.0, 2.0], "down", 0.05), [0.95, 1.95])
    np.testing.assert_allclose(aim(1.0, "up", 0.05), 1.05)


def test_a_reencoded_move_decodes_each_step_once(monkeypatch):
    """The decoder is the move's cost at 256 px: each step's one decoding serves the prediction, the
    similarity and the check whether the step crossed. Counted: the reference and first reading, one
    decoding per step and one after the last, the landing of each crossing, and the end's reading."""
    from modelling.explain import gvr
    from modelling.explain.gvr import Reencoded

    decoder, encoder = ToyDecoder(), SoftEncoder()
    predictor = LinearPredictor(torch.tensor([1.0, 0.0, 0.0, 0.0]), 5.0)
    calls = []
    real = decoder.forward
    monkeypatch.setattr(decoder, "forward", lambda z: calls.append(len(z)) or real(z))
    landings = []
    real_land = gvr._land

    def counted(*a, **k):
        before = len(calls)
        out = real_land(*a, **k)
        landings.append(len(calls) - before)
        return out

    monkeypatch.setattr(gvr, "_land", counted)
    start = np.array([[1.2, 0.0, 0.0, 0.0], [1.6, 0.0, 0.0, 0.0]], np.float32)
    path = move(start, decoder, Reencoded(predictor, encoder, decoder), target_log_bnp=np.log(100),
                direction="down", step_size=0.05, max_steps=500)
    assert path.reached.all() and len(landings) >= 1
    assert len(calls) == 2 + (path.steps.max() + 1) + sum(landings) + 1
    assert max(landings) <= 4  # a landing reads where the prediction meets the target, not by halving twelve times
    # the frames end on the codes where each move landed, not a step beyond them
    np.testing.assert_allclose(path.frames[-1], path.end)
    with torch.no_grad():
        past = Reencoded(predictor, encoder, decoder)(torch.from_numpy(path.end)).numpy()
    assert (past < np.log(100)).all() and (past > np.log(100) - 0.05).all()
    # moved on the code alone without the similarity term, nothing needs a picture but the reference
    calls.clear()
    plain = move(start, decoder, predictor, target_log_bnp=np.log(100), direction="down", step_size=0.05,
                 max_steps=500, similarity_weight=0.0)
    assert plain.reached.all() and plain.steps.max() > 1 and len(calls) == 1


def test_a_named_move_reports_the_codes_it_moves_and_how_many_reached(caplog, monkeypatch):
    import logging

    monkeypatch.setenv("GVR_PROGRESS", "log")
    caplog.set_level(logging.INFO, logger="gvr.progress")
    decoder, predictor = heart_only()
    # one already healthy (not moved), one reaches, one is stopped by the step budget
    start = np.array([[-1.0, 0, 0, 0], [0.6, 0, 0, 0], [3.0, 0, 0, 0]], np.float32)
    path = move(start, decoder, predictor, target_log_bnp=np.log(100), direction="down", max_steps=40,
                desc="toy: moving codes")
    assert path.reached.tolist() == [True, True, False]
    said = [r.getMessage() for r in caplog.records if r.name == "gvr.progress"]
    assert said[0] == "toy: moving codes: start, 2 code"
    assert said[-1].startswith("toy: moving codes: done, 2 code in ") and said[-1].endswith("[reached=1/2]")
    caplog.clear()
    move(start, decoder, predictor, target_log_bnp=np.log(100), direction="down", max_steps=40)
    assert not [r for r in caplog.records if r.name == "gvr.progress"]  # unnamed moves stay quiet


@pytest.mark.parametrize("sparse_steps", [0, 20])
def test_a_codes_frames_span_its_own_path_whatever_is_moved_beside_it(sparse_steps):
    """A short move beside a long one (or alone, as in a torchrun process's share) has the same frames,
    evenly spaced from its start to where it stopped; a code that did not move repeats its start."""
    decoder, predictor = heart_only()
    short, long_, still = [0.6, 0, 0, 0], [2.5, 0, 0, 0], [-1.0, 0, 0, 0]
    kw = dict(target_log_bnp=np.log(100), direction="down", step_size=0.05, max_steps=300, frames=6,
              sparse_steps=sparse_steps)
    together = move(np.array([short, long_, still], np.float32), decoder, predictor, **kw)
    alone = move(np.array([short], np.float32), decoder, predictor, **kw)
    assert together.steps[0] < together.steps[1] / 2 and together.steps[2] == 0
    assert together.frames.shape == (6, 3, 4) and alone.frames.shape == (6, 1, 4)
    np.testing.assert_allclose(together.frames[:, 0], alone.frames[:, 0], atol=1e-6)
    np.testing.assert_allclose(together.frames[0], together.start)
    np.testing.assert_allclose(together.frames[-1], together.end)
    heart = together.frames[:, 0, 0]
    assert (np.diff(heart[:-1]) < 0).all()  # every frame of the short move shows it under way
    np.testing.assert_array_equal(together.frames[:, 2], np.repeat(together.start[2:], 6, axis=0))
    if sparse_steps:  # a code the budget stopped is not shortened: its frames span its path as without
        stopped = move(np.array([long_], np.float32), decoder, predictor, **kw | {"max_steps": 10})
        unshortened = move(np.array([long_], np.float32), decoder, predictor, **kw | {"max_steps": 10, "sparse_steps": 0})
        assert not stopped.reached.any()
        np.testing.assert_allclose(stopped.frames, unshortened.frames)
        assert len(np.unique(stopped.frames[:, 0, 0])) == 6


def test_a_movie_shows_the_change_growing():
    """Every frame is drawn on the scale of the path's largest change: a frame halfway shows a fainter
    colour than the last (each frame had been scaled to its own largest change, so all looked alike)."""
    from modelling.explain.movies import movie_frames

    reference = np.full((16, 16), 100, np.uint8)
    frames = np.stack([reference, reference - 20, reference - 40])  # density removed, twice as much at the end
    shown = movie_frames(frames, np.log([300.0, 150.0, 90.0]), reference, threshold=0.02)
    grey = np.repeat(reference[..., None], 3, axis=-1).astype(int)
    tint = [int(np.abs(frame[2:8, 2:8].astype(int) - grey[2:8, 2:8]).sum()) for frame in shown[:3]]
    assert tint[0] == 0 and 0 < tint[1] < tint[2]


def test_sparse_steps_shift_the_change_onto_what_is_small_in_pixels():
    """log BNP follows the heart (z[0]) and a corner marker (z[1]) equally, and the pattern move (identity
    covariance) takes both down together, so the large disc carries most of the change. The sparse phase
    (``sparse_steps``; Wachter et al.'s L1 proximity) looks for the change smallest in pixels that still
    crosses the target: the marker, about twenty times cheaper per unit of prediction. Its GVR must still
    reach the target, with a change no larger than the move's and mostly on the marker."""
    decoder = ToyDecoder()
    w = torch.zeros(4)
    w[:2] = 1.0
    predictor = LinearPredictor(w, 5.0)
    start = np.array([[1.2, 1.0, 0.0, 0.0], [0.8, 1.5, 0.0, 0.0]], np.float32)  # log BNP 7.2 and 7.3
    g = (np.arange(SIZE) + 0.5) / SIZE * 2 - 1
    yy, xx = np.meshgrid(g, g, indexing="ij")
    marker = (xx + 0.7) ** 2 + (yy + 0.7) ** 2 < 0.02 * 9
    result = {}
    for steps in (0, 300):
        path = move(start, decoder, predictor, target_log_bnp=np.log(100), direction="down", max_steps=500,
                    covariance=np.eye(4), sparse_steps=steps, step_size=0.05)
        assert path.reached.all() and (path.end_log_bnp < np.log(100)).all()
        with torch.no_grad():
            change = np.abs(decoder(torch.from_numpy(path.start)) - decoder(torch.from_numpy(path.end)))[:, 0].numpy()
        result[steps] = (change[:, marker].sum(axis=1) / change.sum(axis=(1, 2)), change.mean(axis=(1, 2)), path)
    share, size, path = result[300]
    assert (result[0][0] < 0.5).all()  # the move alone: mostly the heart
    assert (share > 0.9).all()
    assert (size <= result[0][1] + 1e-7).all()
    np.testing.assert_allclose(path.frames[-1], path.end)
    assert (path.end[:, 0] > result[0][2].end[:, 0]).all()  # the heart is given back


@pytest.mark.parametrize("direction", ["down", "up"])
def test_shortening_a_finished_move_is_the_move_with_sparse_steps(direction):
    """The audit shortens a bundle's GVRs after the fact (:func:`shorten`): a move without sparse steps, then
    shortened, must end where the same move with them ends, to the arithmetic. A code that started at its
    target, and one the step budget stopped short of it, come back as they were."""
    decoder = ToyDecoder()
    w = torch.zeros(4)
    w[:2] = 1.0
    predictor = LinearPredictor(w, 5.0)
    sign = 1.0 if direction == "down" else -1.0
    # moving, already at the target, and too far for the step budget
    start = sign * np.array([[1.2, 1.0, 0.0, 0.0], [-3.0, -3.0, 0.0, 0.0], [40.0, 40.0, 0.0, 0.0]], np.float32)
    target = np.log(100) if direction == "down" else np.log(20.0)
    kw = dict(target_log_bnp=target, direction=direction, max_steps=60, covariance=np.eye(4), step_size=0.05)
    sparse = move(start, decoder, predictor, sparse_steps=200, **kw)
    plain = move(start, decoder, predictor, **kw)
    assert plain.reached.tolist() == [True, True, False]
    codes, shortened = shorten(start, plain.end, decoder, predictor, target_log_bnp=target, direction=direction,
                               steps=200, step_size=0.05)
    assert shortened.tolist() == [True, False, False]
    np.testing.assert_array_equal(codes, sparse.end)
    np.testing.assert_array_equal(codes[1:], plain.end[1:])
    assert not np.array_equal(codes[0], plain.end[0])


def test_sparse_steps_shrink_an_inverse_gvr_too_and_keep_it_past_its_target():
    """Upward (an inverse GVR): the penalty holds the prediction at or above the target while the change
    shrinks; a code that started at its target is not moved."""
    decoder = ToyDecoder()
    w = torch.zeros(4)
    w[:2] = 1.0
    predictor = LinearPredictor(w, 5.0)
    start = np.array([[-1.0, -1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]], np.float32)  # log BNP 3 and 7
    target = np.log(1000.0)  # 6.9: the second code is there already
    plain = move(start, decoder, predictor, target_log_bnp=target, direction="up", max_steps=500,
                 covariance=np.eye(4), step_size=0.05)
    sparse = move(start, decoder, predictor, target_log_bnp=target, direction="up", max_steps=500,
                  covariance=np.eye(4), step_size=0.05, sparse_steps=300)
    assert sparse.reached.all() and sparse.end_log_bnp[0] >= target
    np.testing.assert_array_equal(sparse.end[1], start[1])
    with torch.no_grad():
        size = [float((decoder(torch.from_numpy(p.end[:1])) - decoder(torch.from_numpy(start[:1]))).abs().mean())
                for p in (plain, sparse)]
    assert size[1] < 0.5 * size[0]
    assert sparse.end[0, 1] - start[0, 1] > sparse.end[0, 0] - start[0, 0]  # the marker grows more than the heart


def test_a_shortened_reencoded_move_reads_the_picture_it_measures():
    """The sparse phase decodes each step once and lets the re-encoded model read that picture; the codes
    it keeps are those of the same model called on the code, and a shortened move ends past its target as
    the model reads the picture. The model reads only the heart, and the pattern move (heart and marker
    covarying) also dims the marker, which the picture's model never sees: shortening gives that back."""
    from modelling.explain.gvr import Reencoded

    class Opaque(nn.Module):  # the same model, not recognisably a Reencoded: scored through its forward
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, z):
            return self.inner(z)

    decoder = ToyDecoder()
    seen = Reencoded(LinearPredictor(torch.tensor([1.0, 0.0, 0.0, 0.0]), 5.0), SoftEncoder(), decoder)
    start = np.array([[1.2, 0.0, 0.0, 0.0], [1.6, 0.5, 0.0, 0.0]], np.float32)
    covariance = np.eye(4)
    covariance[0, 1] = covariance[1, 0] = 0.9
    options = dict(target_log_bnp=np.log(100), direction="down", step_size=0.05, max_steps=500, covariance=covariance)
    ends = [move(start, decoder, p, sparse_steps=100, **options) for p in (seen, Opaque(seen))]
    np.testing.assert_allclose(ends[0].end, ends[1].end, atol=1e-5)
    with torch.no_grad():
        assert (seen(torch.from_numpy(ends[0].end)).numpy() < np.log(100)).all()
    plain = move(start, decoder, seen, **options)
    assert (np.abs(plain.end[:, 1] - start[:, 1]) > 1.0).all()  # the move alone dims the marker too
    assert (np.abs(ends[0].end[:, 1] - start[:, 1]) < 0.05).all()  # shortened, the marker is given back
    # the audit's way (modelling.stages.baselines): the move made without sparse steps, then shortened
    codes, shortened = shorten(start, plain.end, decoder, seen, target_log_bnp=np.log(100), direction="down",
                               steps=100, step_size=0.05)
    assert shortened.all()
    np.testing.assert_array_equal(codes, ends[0].end)


@pytest.mark.parametrize("direction", ["down", "up"])
@pytest.mark.parametrize("curve, most", [
    (lambda t: 15 * t + 0.5 * t ** 2, 4),  # nearly linear along the step, as a GVR step is: a few readings
    (lambda t: torch.exp(3 * t) - 1.0, 11),  # far from it: still fewer than the twelve halvings, which would
])                                           # leave it up to 0.015 past the target here, not 0.001
def test_a_landing_ends_just_past_the_target_in_a_few_readings(direction, curve, most):
    """A crossing step lands where the prediction meets the target, within the tolerance past it, each
    reading going where the prediction, taken as linear along the segment, says it meets the target."""
    from modelling.explain.gvr import LANDING_TOLERANCE, _done, _land

    reads = []

    def predictor(x):  # monotone along the segment from 0 to 1 (x[:, 0])
        reads.append(len(x))
        return curve(x[:, 0])

    targets = torch.linspace(0.5, 14.0, 5)
    low, high = torch.zeros(5, 2), torch.ones(5, 2)
    inside, outside = (low, high) if direction == "up" else (high, low)
    f_in, f_out = predictor(inside), predictor(outside)
    reads.clear()
    landed = _land(inside, outside, f_in, f_out, predictor, targets, direction)
    readings = len(reads)
    value = predictor(landed)
    assert _done(value, targets, direction).all()
    assert ((value - targets).abs() <= LANDING_TOLERANCE).all()
    assert readings <= most
