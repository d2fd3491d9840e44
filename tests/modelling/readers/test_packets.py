"""Blinded reading packets: what readers get holds no model, patient, date or gvr id; the key validates."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from data_schema import Bundle, load_table
from modelling.cli.readers import register
from modelling.readers.packets import PacketError, load_packet
from modelling.stages.packet import make_packet
from tests.conftest import copy_bundle

SAFE_CHUNKS = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind = data[at + 4:at + 8]
        chunks.append((kind, data[at + 8:at + 8 + length]))
        at += 12 + length
    return chunks


@pytest.fixture(scope="module")
def study(tiny_explained, tmp_path_factory) -> Path:
    return copy_bundle(tiny_explained, tmp_path_factory.mktemp("study") / "bundle")


@pytest.fixture(scope="module")
def made(study, tmp_path_factory):
    out = tmp_path_factory.mktemp("made")
    summary = make_packet(study, out / "packet", key_path=out / "secret" / "key.csv", per_model=3, rng=7)
    return summary


def secrets(study: Path) -> set[str]:
    """Everything that would unblind a reader: model, gvr, image and patient ids, regimes."""
    bundle = Bundle(study)
    index = bundle.read_table("gvr_index")
    radiographs = bundle.read_table("radiographs")
    return (set(index["gvr_id"]) | set(index["model_id"]) | set(index["image_id"]) | set(index["regime"])
            | set(radiographs["patient_id"]) | {"correct", "overfitted", "mlp", "linear"})


def test_packet_draws_per_model_from_predicted_high_gvrs(study, made, tmp_path):
    index = Bundle(study).read_table("gvr_index")
    key = load_table(made.key_path, "reading_key")
    assert made.drawn == {"mlp-correct": 3, "mlp-overfitted": 3}
    assert made.short_models == ()
    assert len(key) == 6 and key.groupby("model_id").size().to_dict() == made.drawn
    chosen = index.set_index("gvr_id").loc[key["gvr_id"]]
    assert (chosen["kind"] == "gvr").all()
    assert (chosen["start_pred_ng_l"] > 100).all()
    assert set(key["blinded_id"]) == set(made.packet.ids)
    frame = made.to_frame()
    assert list(frame.columns) == ["model_id", "available", "drawn", "short"]
    fewer = make_packet(study, tmp_path / "p", key_path=tmp_path / "k.csv", per_model=2, rng=1)
    small = load_table(fewer.key_path, "reading_key")
    assert small.groupby("model_id").size().to_dict() == {"mlp-correct": 2, "mlp-overfitted": 2}
    assert set(small["gvr_id"]) <= set(key["gvr_id"])


def test_key_validates_and_patients_come_from_radiographs(study, made):
    key = load_table(made.key_path, "reading_key")  # raises TableValidationError if invalid
    radiographs = Bundle(study).read_table("radiographs").set_index("image_id")
    assert (key["patient_id"].to_numpy() == radiographs.loc[key["image_id"], "patient_id"].to_numpy()).all()
    assert not made.key_path.resolve().is_relative_to(made.packet.root.resolve())


def test_nothing_in_the_packet_names_model_patient_date_or_gvr(study, made):
    hidden = secrets(study)
    date = re.compile(r"(19|20)\d\d-?[01]\d-?[0-3]\d")
    files = [p for p in made.packet.root.rglob("*") if p.is_file()]
    assert len(files) == 1 + 6 * 2 + 2 * 2  # packet.json, 2 PNGs per GVR, an order per reader and round
    for path in files:
        rel = path.relative_to(made.packet.root).as_posix()
        assert not any(s in rel for s in hidden), rel
        assert not date.search(rel), rel
        if path.suffix == ".png":
            chunks = png_chunks(path.read_bytes())
            assert {kind for kind, _ in chunks} <= SAFE_CHUNKS, (rel, [k for k, _ in chunks])
        else:
            text = path.read_text()
            assert not any(s in text for s in hidden), rel
            assert not date.search(text), rel
    info = json.loads((made.packet.root / "packet.json").read_text())
    assert set(info) == {"format", "features", "readers", "rounds", "ids"}


def test_blinded_ids_are_not_derived_from_gvr_ids(made):
    key = load_table(made.key_path, "reading_key")
    for blinded, gvr in zip(key["blinded_id"], key["gvr_id"]):
        assert blinded not in gvr and gvr not in blinded
        assert not set(re.findall(r"\d+", gvr)) & set(re.findall(r"\d{2,}", blinded))


def test_images_keep_their_pixels(study, made):
    from PIL import Image

    bundle = Bundle(study)
    key = load_table(made.key_path, "reading_key")
    index = Bundle(study).read_table("gvr_index").set_index("gvr_id")
    for blinded, gvr in zip(key["blinded_id"], key["gvr_id"]):
        for role in ("overlay", "original"):
            copied = np.asarray(Image.open(made.packet.image_path(blinded, role)))
            np.testing.assert_array_equal(copied, bundle.read_image(index.loc[gvr, f"{role}_path"]))


def test_orders_differ_between_readers_and_rounds(made):
    p = made.packet
    orders = {(r, k): p.order(r, k) for r in p.readers for k in range(1, p.rounds + 1)}
    assert len(orders) == 4
    for order in orders.values():
        assert sorted(order) == list(p.ids)
    assert len(set(orders.values())) == 4


def test_same_seed_same_packet_other_seed_other(study, made, tmp_path):
    again = make_packet(study, tmp_path / "again", key_path=tmp_path / "again.csv", per_model=3, rng=7)
    assert again.packet.ids == made.packet.ids
    assert again.key_path.read_text() == made.key_path.read_text()
    for r in ("A", "B"):
        for k in (1, 2):
            assert again.packet.order(r, k) == made.packet.order(r, k)
    for path in made.packet.root.rglob("*.png"):
        assert (tmp_path / "again" / path.relative_to(made.packet.root)).read_bytes() == path.read_bytes()
    other = make_packet(study, tmp_path / "other", key_path=tmp_path / "other.csv", per_model=3, rng=8)
    assert other.packet.ids != made.packet.ids


def test_fewer_gvrs_than_asked_takes_all_and_says_so(study, tmp_path):
    with pytest.warns(UserWarning, match="fewer than per_model=5"):
        summary = make_packet(study, tmp_path / "p", key_path=tmp_path / "k.csv", per_model=5, rounds=1,
                              readers=["R1"], features=["cardiomegaly"], rng=0)
    assert summary.drawn == {"mlp-correct": 3, "mlp-overfitted": 3}
    assert summary.short_models == ("mlp-correct", "mlp-overfitted")
    assert load_packet(tmp_path / "p").readers == ("R1",)


@pytest.mark.parametrize("key_rel", ["p/key.csv", "p/sub/key.csv", "p/./key.csv"])
def test_refuses_a_key_inside_the_packet(study, tmp_path, key_rel):
    with pytest.raises(PacketError, match="inside the packet"):
        make_packet(study, tmp_path / "p", key_path=tmp_path / key_rel, per_model=1, rng=0)
    assert not (tmp_path / "p").exists()


def test_refuses_bad_options_and_existing_outputs(study, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    (tmp_path / "old.csv").write_text("x")
    cases = [
        (dict(out_dir=tmp_path / "full"), "not an empty directory"),
        (dict(key_path=tmp_path / "old.csv"), "exists"),
        (dict(key_path=tmp_path / "k.txt"), "must end in .csv"),
        (dict(rounds=0), "rounds must be a positive integer"),
        (dict(per_model=0), "per_model must be a positive integer"),
        (dict(readers="AB"), "readers must be a list"),
        (dict(readers=["A", "A"]), "distinct"),
        (dict(readers=["../x"]), "readers must match"),
        (dict(features=["Cardiomegaly"]), "features must match"),
    ]
    for change, message in cases:
        kwargs = dict(out_dir=tmp_path / "p", key_path=tmp_path / "k.csv", rng=0) | change
        with pytest.raises(PacketError, match=re.escape(message)):
            make_packet(study, **kwargs)


def test_load_packet_refuses_a_non_packet(tmp_path):
    with pytest.raises(PacketError, match="no packet.json"):
        load_packet(tmp_path)
    (tmp_path / "packet.json").write_text('{"format": "other"}')
    with pytest.raises(PacketError, match="not a gvr-chf-packet/1 packet"):
        load_packet(tmp_path)


def test_cli_packet(study, tmp_path):
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["packet", str(study), "--out", str(tmp_path / "p"), "--key",
                                      str(tmp_path / "k.csv"), "--per-model", "2", "--rounds", "1",
                                      "--readers", "A,B", "--readers", "C", "--features", "cardiomegaly",
                                      "--features", "pleural_effusion", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "packet:" in result.output and "keep it from the readers" in result.output
    p = load_packet(tmp_path / "p")
    assert p.readers == ("A", "B", "C") and p.rounds == 1 and len(p.ids) == 4
    assert p.features == ("cardiomegaly", "pleural_effusion")
    bad = CliRunner().invoke(app, ["packet", str(study), "--out", str(tmp_path / "q"), "--key",
                                   str(tmp_path / "q" / "k.csv")])
    assert bad.exit_code == 2
    assert "inside the packet" in bad.output
    # without --per-model and --rounds, the study's own (config.yaml; the tiny profile's 3 and 2), not 50 and 2
    assert not (study / "config.yaml").exists()  # built from Python: the file written here is the only one
    (study / "config.yaml").write_text("profile: tiny\nreaders:\n  per_model: 1\n  rounds: 1\n")
    try:
        own = CliRunner().invoke(app, ["packet", str(study), "--out", str(tmp_path / "own"), "--key",
                                       str(tmp_path / "own.csv"), "--seed", "3"])
    finally:
        (study / "config.yaml").unlink()
    assert own.exit_code == 0, own.output
    assert len(load_packet(tmp_path / "own").ids) == 2 and load_packet(tmp_path / "own").rounds == 1


def test_nothing_in_the_packet_follows_the_model(study, made, tmp_path):
    """Files share one time stamp (a copy that keeps times would otherwise list them model by model), and
    without a seed two packets of the same study get different ids (a default seed anyone knows would
    let a reader recompute the key)."""
    images = sorted((made.packet.root / "images").iterdir())
    assert len({p.stat().st_mtime_ns for p in images}) == 1
    app = typer.Typer()
    register(app)
    for name in ("a", "b"):
        result = CliRunner().invoke(app, ["packet", str(study), "--out", str(tmp_path / name), "--key",
                                          str(tmp_path / f"{name}.csv"), "--per-model", "3"])
        assert result.exit_code == 0, result.output
    assert set(load_packet(tmp_path / "a").ids) != set(load_packet(tmp_path / "b").ids)
