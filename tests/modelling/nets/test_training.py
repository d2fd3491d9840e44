"""Decoder and encoder training: runs on the tiny profile and resumes to the same weights."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from modelling.config import load_config
from modelling.nets import checkpoints
from modelling.nets.training import Interrupted, encode, train_decoder, train_encoder


@pytest.fixture(scope="module")
def setup():
    cfg = load_config("tiny")
    cfg = dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, objective="wgan-gp", iterations=6,
                                                               learning_rate=5e-5, betas=(0.5, 0.9)),
                              encoder=dataclasses.replace(cfg.encoder, iterations=6))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, cfg.image_size, cfg.image_size), dtype=np.uint8)
    return cfg, images


def states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def stop_at(k):
    def stop(step):
        if step == k:
            raise Interrupted(f"killed at step {k}")
    return stop


def test_killed_decoder_training_resumes_to_the_same_weights(setup, tmp_path):
    cfg, images = setup
    full, stats = train_decoder(images, cfg, tmp_path / "a")
    assert stats["iterations"] == 6 and np.isfinite(stats["critic"])
    with pytest.raises(Interrupted):
        train_decoder(images, cfg, tmp_path / "b", stop=stop_at(3))  # checkpoint_every = 2: saved at 2
    assert checkpoints.load(tmp_path / "b/decoder.pt")["step"] == 2
    resumed, _ = train_decoder(images, cfg, tmp_path / "b")
    assert states_equal(full, resumed)


def test_killed_encoder_training_resumes_to_the_same_weights(setup, tmp_path):
    cfg, images = setup
    generator, _ = train_decoder(images, cfg, tmp_path / "dec")
    full, _ = train_encoder(images, generator, cfg, tmp_path / "a")
    with pytest.raises(Interrupted):
        train_encoder(images, generator, cfg, tmp_path / "b", stop=stop_at(5))
    resumed, _ = train_encoder(images, generator, cfg, tmp_path / "b")
    assert states_equal(full, resumed)
    z = encode(resumed, images[:3])
    assert z.shape == (3, cfg.decoder.latent_dim) and z.dtype == np.float32


def test_other_seed_other_weights_and_global_rng_untouched(setup, tmp_path):
    cfg, images = setup
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, _ = train_decoder(images, cfg, tmp_path / "a")
    assert torch.equal(torch.rand(1), before)  # library code never reseeds torch's global generator
    b, _ = train_decoder(images, dataclasses.replace(cfg, seed=cfg.seed + 1), tmp_path / "b")
    assert not states_equal(a, b)


def test_a_stale_work_checkpoint_is_set_aside_not_resumed(setup, tmp_path):
    from modelling.nets.training import StaleCheckpointWarning

    cfg, images = setup
    fresh_other_config, _ = train_decoder(images, dataclasses.replace(
        cfg, decoder=dataclasses.replace(cfg.decoder, learning_rate=1e-3)), tmp_path / "fresh")
    train_decoder(images, cfg, tmp_path / "work")
    other = dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, learning_rate=1e-3))
    with pytest.warns(StaleCheckpointWarning, match="keys that differ: decoder.learning_rate"):
        g, stats = train_decoder(images, other, tmp_path / "work")
    assert states_equal(g, fresh_other_config) and stats["critic"] is not None
    # the same config on other images is stale too: a work checkpoint belongs to its data
    with pytest.warns(StaleCheckpointWarning, match="data"):
        train_decoder(images[::-1].copy(), other, tmp_path / "work", data_key={"images": "other"})


def test_bad_inputs(setup, tmp_path):
    cfg, images = setup
    with pytest.raises(ValueError, match="unlabelled set is empty"):
        train_decoder(images[:0], cfg, tmp_path)
    with pytest.raises(ValueError, match="the config says 32 px"):
        train_decoder(np.zeros((4, 64, 64), np.uint8), cfg, tmp_path)


@pytest.mark.slow
def test_the_compile_switch_trains_to_about_the_same_weights(setup, tmp_path):
    cfg, images = setup
    compiled = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, compile=True))
    a, _ = train_decoder(images, cfg, tmp_path / "eager")
    b, stats = train_decoder(images, compiled, tmp_path / "compiled")
    assert np.isfinite(stats["critic"])
    for k, v in a.state_dict().items():
        if v.dtype.is_floating_point:
            torch.testing.assert_close(v, b.state_dict()[k], rtol=1e-3, atol=1e-4, msg=k)


def test_a_killed_autoencoder_resumes_to_the_same_weights_and_learns(setup, tmp_path):
    from modelling.nets.training import train_networks

    cfg, images = setup
    cfg = dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, objective="autoencoder", iterations=6,
                                                               learning_rate=1e-3),
                              encoder=dataclasses.replace(cfg.encoder, iterations=0))
    g_full, e_full, stats = train_networks(images, cfg, tmp_path / "a")
    assert stats["decoder"]["objective"] == "autoencoder" and stats["encoder"]["iterations"] == 0
    assert np.isfinite(stats["decoder"]["image"]) and np.isfinite(stats["decoder"]["mmd"])
    with pytest.raises(Interrupted):
        train_networks(images, cfg, tmp_path / "b", stop=stop_at(3))
    g_res, e_res, _ = train_networks(images, cfg, tmp_path / "b")
    assert states_equal(g_full, g_res) and states_equal(e_full, e_res)
    # the encoder is trained with the decoder: it is not the fresh encoder of that seed
    from modelling.nets.training import build_encoder

    assert not states_equal(e_full, build_encoder(cfg))


def test_a_cosine_schedule_runs_the_rate_down_and_a_killed_run_resumes_on_it(setup, tmp_path, monkeypatch):
    """``decoder.schedule: cosine``: each step's rate from its index (so a resumed run follows the schedule),
    the peak at the first step and near 0 at the last; a constant schedule leaves the rate alone."""
    from modelling.nets import training
    from modelling.nets.training import cosine_rate, train_networks

    assert cosine_rate(1e-3, 0, 6) == 1e-3 and cosine_rate(1e-3, 3, 6) == pytest.approx(5e-4)
    assert 0 < cosine_rate(1e-3, 5, 6) < 1e-4
    cfg, images = setup
    cfg = dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, objective="autoencoder", iterations=6,
                                                               learning_rate=1e-3, schedule="cosine"),
                              encoder=dataclasses.replace(cfg.encoder, iterations=0))
    rates = []
    set_rate = training._set_rate
    monkeypatch.setattr(training, "_set_rate", lambda opt, rate: (rates.append(rate), set_rate(opt, rate)))
    g_full, e_full, stats = train_networks(images, cfg, tmp_path / "a")
    assert rates == [cosine_rate(1e-3, i, 6) for i in range(6)] and stats["decoder"]["schedule"] == "cosine"
    with pytest.raises(Interrupted):
        train_networks(images, cfg, tmp_path / "b", stop=stop_at(3))
    rates.clear()
    g_res, e_res, _ = train_networks(images, cfg, tmp_path / "b")
    assert 0 < len(rates) < 6 and rates == [cosine_rate(1e-3, i, 6) for i in range(6 - len(rates), 6)]  # from a checkpoint
    assert states_equal(g_full, g_res) and states_equal(e_full, e_res)
    constant = dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, schedule="constant"))
    rates.clear()
    g_const, _, _ = train_networks(images, constant, tmp_path / "c")
    assert rates == [] and not states_equal(g_full, g_const)


def test_noise_on_the_codes_reaches_the_decoder_and_a_killed_run_resumes_on_it(setup, tmp_path, monkeypatch):
    """``decoder.code_noise``: the decoder draws each code plus N(0, s^2 I) in training (drawn from the step's own
    stream, so a resumed run draws the same noise); at 0 it draws the codes as they are, as before the option."""
    from modelling.nets import networks
    from modelling.nets.training import decoder_config, train_networks

    cfg, images = setup
    def noisy(noise):
        return dataclasses.replace(cfg, decoder=dataclasses.replace(
            cfg.decoder, objective="autoencoder", iterations=6, learning_rate=1e-3, code_noise=noise),
            encoder=dataclasses.replace(cfg.encoder, iterations=0))

    def record(cls, store, keep_input):
        forward = cls.forward
        def spy(self, x):
            out = forward(self, x)
            store.append((x if keep_input else out).detach().float().clone())
            return out
        monkeypatch.setattr(cls, "forward", spy)

    codes, drawn = [], []
    record(networks.Encoder, codes, keep_input=False)
    record(networks.Generator, drawn, keep_input=True)
    g_full, e_full, stats = train_networks(images, noisy(0.5), tmp_path / "a")
    assert stats["decoder"]["code_noise"] == 0.5 and len(codes) == len(drawn) == 6
    added = torch.cat([d - c for c, d in zip(codes, drawn)])
    assert abs(float(added.std()) - 0.5) < 0.05 and abs(float(added.mean())) < 0.05  # 6 x 16 x 100 draws
    with pytest.raises(Interrupted):
        train_networks(images, noisy(0.5), tmp_path / "b", stop=stop_at(3))
    g_res, e_res, _ = train_networks(images, noisy(0.5), tmp_path / "b")
    assert states_equal(g_full, g_res) and states_equal(e_full, e_res)
    codes.clear(), drawn.clear()
    g_quiet, _, quiet = train_networks(images, noisy(0.0), tmp_path / "c")
    assert quiet["decoder"]["code_noise"] == 0.0 and not states_equal(g_full, g_quiet)
    assert all(torch.equal(c, d) for c, d in zip(codes, drawn)) and len(codes) == 6
    # at 0 the key is what it was before the option existed, so bundles trained then stay current
    assert "code_noise" not in decoder_config(noisy(0.0))["decoder"]
    assert decoder_config(noisy(0.5))["decoder"]["code_noise"] == 0.5


def test_the_edge_loss_compares_neighbouring_pixel_differences():
    """:func:`edge_loss` is 0 for any constant offset (it reads differences only) and, for a ramp against a flat
    image, the squared step across plus 0 down."""
    from modelling.nets.training import edge_loss

    x = torch.linspace(-1, 1, 64).reshape(1, 1, 8, 8)
    assert float(edge_loss(x + 0.3, x)) == pytest.approx(0.0, abs=1e-12)
    ramp = torch.arange(5.0).expand(2, 1, 4, 5) * 0.1  # steps of 0.1 across, none down
    assert float(edge_loss(ramp, torch.zeros_like(ramp))) == pytest.approx(0.01)
    assert float(edge_loss(ramp.transpose(-1, -2), torch.zeros(2, 1, 5, 4))) == pytest.approx(0.01)


def test_the_edge_weight_trains_the_decoder_on_borders_and_leaves_the_key_at_0(setup, tmp_path, monkeypatch):
    """``decoder.edge_weight``: the autoencoder's loss gains that weight times the edge loss of what the decoder
    drew; at 0 it trains as before the option and its key is the one bundles trained then have."""
    from modelling.nets import training
    from modelling.nets.training import decoder_config, train_networks

    cfg, images = setup
    def edged(weight):
        return dataclasses.replace(cfg, decoder=dataclasses.replace(
            cfg.decoder, objective="autoencoder", iterations=4, learning_rate=1e-3, edge_weight=weight),
            encoder=dataclasses.replace(cfg.encoder, iterations=0))

    seen = []
    edge_loss = training.edge_loss
    monkeypatch.setattr(training, "edge_loss", lambda a, b: seen.append(a.shape) or edge_loss(a, b))
    g_plain, _, plain = train_networks(images, edged(0.0), tmp_path / "a")
    assert seen == [] and "edge" not in plain["decoder"] and plain["decoder"]["edge_weight"] == 0.0
    g_edge, _, stats = train_networks(images, edged(2.0), tmp_path / "b")
    assert len(seen) == 4 and stats["decoder"]["edge"] > 0 and stats["decoder"]["edge_weight"] == 2.0
    assert stats["decoder"]["loss"] == pytest.approx(
        stats["decoder"]["image"] + cfg.decoder.mmd_weight * stats["decoder"]["mmd"] + 2.0 * stats["decoder"]["edge"],
        rel=1e-5)
    assert not states_equal(g_plain, g_edge)
    assert "edge_weight" not in decoder_config(edged(0.0))["decoder"]
    assert decoder_config(edged(2.0))["decoder"]["edge_weight"] == 2.0


def test_the_autoencoder_reconstructs_better_than_it_started(tmp_path):
    """Forty iterations on a few images of two kinds: the reconstruction error falls."""
    from modelling.nets.training import decode, train_networks

    cfg = load_config("tiny")
    yy, xx = np.mgrid[:cfg.image_size, :cfg.image_size]
    disc = ((yy - 16) ** 2 + (xx - 16) ** 2 < 64).astype(np.uint8) * 200 + 20
    images = np.stack([disc, disc.T[::-1]] * 16)
    errors = []
    for iterations in (1, 200):
        c = dataclasses.replace(cfg, decoder=dataclasses.replace(
            cfg.decoder, objective="autoencoder", iterations=iterations, learning_rate=2e-3, batch_size=16),
            encoder=dataclasses.replace(cfg.encoder, iterations=0))
        g, e, _ = train_networks(images, c, tmp_path / str(iterations))
        recon = decode(g, encode(e, images[:2]))
        errors.append(float(np.mean((recon.astype(float) - images[:2]) ** 2)))
    assert errors[1] < 0.5 * errors[0]


def test_an_autoencoder_then_encoder_fine_tuning_continues_from_the_joint_encoder(setup, tmp_path):
    from modelling.nets.training import train_networks

    cfg, images = setup
    joint = dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, objective="autoencoder", iterations=4),
                                encoder=dataclasses.replace(cfg.encoder, iterations=0))
    tuned = dataclasses.replace(joint, encoder=dataclasses.replace(cfg.encoder, iterations=2))
    g0, e0, _ = train_networks(images, joint, tmp_path / "a")
    g1, e1, stats = train_networks(images, tuned, tmp_path / "b")
    assert states_equal(g0, g1)  # the same joint training
    assert stats["encoder"]["iterations"] == 2 and not states_equal(e0, e1)


def test_a_work_checkpoint_of_other_networks_or_another_precision_is_set_aside(setup, tmp_path, monkeypatch):
    """The joint run keeps the encoder in its work checkpoint: another encoder width starts from step 0 (it
    crashed in load_state_dict); so does the same config resolved to another precision ("auto" is bf16 on
    one machine and float32 on another)."""
    from modelling.nets import training
    from modelling.nets.training import StaleCheckpointWarning, train_networks

    cfg, images = setup
    cfg = dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, objective="autoencoder", iterations=4,
                                                               learning_rate=1e-3),
                              encoder=dataclasses.replace(cfg.encoder, iterations=0))
    wider = dataclasses.replace(cfg, encoder=dataclasses.replace(cfg.encoder, feature_maps=2 * cfg.encoder.feature_maps))
    g_fresh, e_fresh, _ = train_networks(images, wider, tmp_path / "fresh")
    with pytest.raises(Interrupted):
        train_networks(images, cfg, tmp_path / "work", stop=stop_at(3))
    with pytest.warns(StaleCheckpointWarning, match="encoder_feature_maps"):
        g, e, _ = train_networks(images, wider, tmp_path / "work")
    assert states_equal(g, g_fresh) and states_equal(e, e_fresh)
    # whatever the key, networks that do not fit the checkpoint are set aside and left as they were built
    small, big = torch.nn.Linear(2, 2), torch.nn.Linear(3, 2)
    checkpoints.save(tmp_path / "guard/x.pt", checkpoints.payload("x", models={"net": small}, config={"k": 1}, seed=0,
                                                                 step=5, optimizers={}))
    before = {k: v.clone() for k, v in big.state_dict().items()}
    with pytest.warns(StaleCheckpointWarning, match="do not fit"):
        assert training._resume(tmp_path / "guard", "x", {"k": 1}, 0, {"net": big}, {}) == (0, {})
    assert all(torch.equal(before[k], v) for k, v in big.state_dict().items())
    auto = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, bf16="auto"))
    monkeypatch.setattr(training, "fast_bf16", lambda device: False)
    with pytest.raises(Interrupted):
        train_networks(images, auto, tmp_path / "prec", stop=stop_at(3))
    monkeypatch.setattr(training, "fast_bf16", lambda device: True)
    with pytest.warns(StaleCheckpointWarning, match="bf16_resolved"):
        train_networks(images, auto, tmp_path / "prec")


def test_training_asks_cudnn_for_deterministic_kernels_and_puts_its_settings_back():
    from modelling.nets.training import deterministic_cudnn

    before = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        with deterministic_cudnn():
            assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic == before[0]
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before
