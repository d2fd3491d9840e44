"""Unblinding: responses + key give a valid reader_assessments table; every bad input is refused by name."""

from __future__ import annotations

import csv
import shutil
import zlib
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from data_schema import Bundle, TableValidationError, load_table, validate_frame
from modelling.cli.readers import STAGE, register
from modelling.readers.packets import PacketError, load_packet
from modelling.readers.unblind import RESPONSE_COLUMNS, ResponsesError, read_responses, unblind
from modelling.stages.packet import make_packet
from tests.conftest import copy_bundle


@pytest.fixture(scope="module")
def setup(tiny_explained, tmp_path_factory):
    root = tmp_path_factory.mktemp("unblind")
    study = copy_bundle(tiny_explained, root / "bundle")
    summary = make_packet(study, root / "packet", key_path=root / "key.csv", per_model=3, rng=11)
    return study, summary.packet, summary.key_path


def write_responses(path: Path, rows: list[list], columns=RESPONSE_COLUMNS) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def answer(blinded_id: str, feature: str, reader: str, k: int) -> bool:
    if feature == "no_chf_features":  # as the reading page allows: exclusive of the CHF features
        return not any(answer(blinded_id, f, reader, k) for f in ("cardiomegaly", "pleural_effusion", "airspace_opacity"))
    return zlib.crc32(f"{blinded_id}/{feature}/{reader}/{k}".encode()) % 3 == 0


def full_responses(packet, directory: Path) -> list[Path]:
    """One complete file per reader and round, as the reading page writes them."""
    paths = []
    for reader in packet.readers:
        for k in range(1, packet.rounds + 1):
            rows = [[reader, k, b, f, str(answer(b, f, reader, k)).lower(), f"2024-05-0{k}T10:{i // 60:02d}:{i % 60:02d}"]
                    for i, (b, f) in enumerate((b, f) for b in packet.order(reader, k) for f in packet.features)]
            paths.append(write_responses(directory / f"{reader}-round{k}.csv", rows))
    return paths


def problems_of(excinfo) -> list:
    return excinfo.value.problems


def the_problem(packet, paths, key_path):
    """The one problem for which unblinding `paths` is refused."""
    with pytest.raises(ResponsesError) as excinfo:
        unblind(packet.root, paths, key_path)
    (p,) = problems_of(excinfo)
    return p


def test_unblind_gives_a_valid_table_with_key_columns(setup, tmp_path):
    _, packet, key_path = setup
    table = unblind(packet.root, full_responses(packet, tmp_path), key_path)
    assert validate_frame(table, "reader_assessments") == []
    n = len(packet.readers) * packet.rounds * len(packet.ids) * len(packet.features)
    assert len(table) == n
    assert not table["simulated"].any()
    key = load_table(key_path, "reading_key").set_index("gvr_id")
    assert (table["patient_id"].to_numpy() == key.loc[table["gvr_id"], "patient_id"].to_numpy()).all()
    assert (table["regime"].to_numpy() == key.loc[table["gvr_id"], "regime"].to_numpy()).all()
    blinded = key["blinded_id"]
    for rec in table.sample(10, random_state=0).itertuples():
        assert rec.present == answer(blinded[rec.gvr_id], rec.feature, rec.reader, rec.round)


def test_one_combined_file_is_the_same(setup, tmp_path):
    _, packet, key_path = setup
    paths = full_responses(packet, tmp_path)
    combined = pd.concat([pd.read_csv(p, dtype=str) for p in paths])
    combined.to_csv(tmp_path / "all.csv", index=False)
    pd.testing.assert_frame_equal(unblind(packet.root, [tmp_path / "all.csv"], key_path),
                                  unblind(packet.root, paths, key_path))


def test_feature_not_in_the_packet(setup, tmp_path):
    _, packet, key_path = setup
    paths = full_responses(packet, tmp_path)
    frame = pd.read_csv(paths[0], dtype=str)
    frame.loc[2, "feature"] = "septal_lines"
    frame.to_csv(paths[0], index=False)
    with pytest.raises(ResponsesError) as excinfo:
        unblind(packet.root, paths, key_path)
    (p,) = problems_of(excinfo)
    assert (p.file, p.row, p.column, p.value) == (str(paths[0]), 3, "feature", "septal_lines")
    assert "not a feature of this packet" in str(excinfo.value)
    assert "row 3 (line 4)" in str(excinfo.value)


def test_missing_column(setup, tmp_path):
    _, packet, key_path = setup
    paths = full_responses(packet, tmp_path)
    pd.read_csv(paths[1], dtype=str).drop(columns="present").to_csv(paths[1], index=False)
    p = the_problem(packet, paths, key_path)
    assert (p.file, p.row, p.column) == (str(paths[1]), None, "present")
    assert "missing column" in p.message


def test_mistyped_blinded_id(setup, tmp_path):
    _, packet, key_path = setup
    paths = full_responses(packet, tmp_path)
    frame = pd.read_csv(paths[2], dtype=str)
    typo = frame.loc[5, "blinded_id"].lower()
    frame.loc[5, "blinded_id"] = typo
    frame.to_csv(paths[2], index=False)
    with pytest.raises(ResponsesError) as excinfo:
        unblind(packet.root, paths, key_path)
    first = problems_of(excinfo)[0]
    assert (first.file, first.row, first.column, first.value) == (str(paths[2]), 6, "blinded_id", typo)
    assert "unknown blinded id" in first.message


def test_duplicate_rows_refused_unless_latest(setup, tmp_path):
    _, packet, key_path = setup
    paths = full_responses(packet, tmp_path)
    frame = pd.read_csv(paths[0], dtype=str)
    # a CHF feature not marked on a GVR that shows another: marking it too is still an answer the server takes
    with_chf = frame.loc[(frame["feature"] == "no_chf_features") & (frame["present"] == "false"), "blinded_id"]
    first = frame.index[frame["blinded_id"].isin(with_chf) & (frame["feature"] != "no_chf_features")
                        & (frame["present"] == "false")][0]
    again = frame.loc[[first]].copy()
    again["present"] = "true"
    again["answered_at"] = "2024-05-01T11:00:00"  # later than every other answer
    pd.concat([frame, again]).to_csv(paths[0], index=False)
    p = the_problem(packet, paths, key_path)
    assert (p.file, p.row, p.column) == (str(paths[0]), len(frame) + 1, "blinded_id")
    assert "duplicate answer" in p.message and "--latest" in p.message

    table = unblind(packet.root, paths, key_path, latest=True)
    key = load_table(key_path, "reading_key").set_index("blinded_id")
    row = frame.loc[first]
    chosen = table[(table["reader"] == row["reader"]) & (table["round"] == int(row["round"]))
                   & (table["gvr_id"] == key.loc[row["blinded_id"], "gvr_id"]) & (table["feature"] == row["feature"])]
    assert len(chosen) == 1 and chosen["present"].item() == (again["present"].item() == "true")


def test_an_answer_the_reading_server_would_refuse_is_refused_here_too(setup, tmp_path):
    """"No CHF features" together with a CHF feature, edited into a responses file: the server refuses it
    (400), and so does the unblinding, at the row of the "No CHF features" answer."""
    _, packet, key_path = setup
    paths = full_responses(packet, tmp_path)
    frame = pd.read_csv(paths[0], dtype=str)
    blinded = frame.loc[(frame["feature"] == "cardiomegaly") & (frame["present"] == "true"), "blinded_id"].iloc[0]
    row = frame.index[(frame["blinded_id"] == blinded) & (frame["feature"] == "no_chf_features")][0]
    frame.loc[row, "present"] = "true"
    frame.to_csv(paths[0], index=False)
    p = the_problem(packet, paths, key_path)
    assert (p.file, p.row, p.column) == (str(paths[0]), row + 1, "present")
    assert f"id {blinded}: contradictory answer: No CHF features together with cardiomegaly" in p.message


def test_an_answer_that_marks_nothing_is_refused_at_its_no_chf_row(setup, tmp_path):
    """An answer with nothing marked, edited into a responses file, is refused as the server refuses it."""
    _, packet, key_path = setup
    paths = full_responses(packet, tmp_path)
    frame = pd.read_csv(paths[1], dtype=str)
    blinded = frame.loc[frame["feature"] == "no_chf_features", "blinded_id"].iloc[3]
    rows = frame.index[frame["blinded_id"] == blinded]
    frame.loc[rows, "present"] = "false"
    frame.to_csv(paths[1], index=False)
    p = the_problem(packet, paths, key_path)
    row = frame.index[(frame["blinded_id"] == blinded) & (frame["feature"] == "no_chf_features")][0]
    assert (p.file, p.row, p.column) == (str(paths[1]), row + 1, "present")
    assert f"id {blinded}: no feature marked" in p.message


def test_a_file_given_twice_is_one_problem_not_every_answer_twice(setup, tmp_path):
    _, packet, key_path = setup
    paths = full_responses(packet, tmp_path)
    with pytest.raises(ResponsesError) as raised:
        unblind(packet.root, [paths[0], *paths, paths[0].parent / ".." / paths[0].parent.name / paths[0].name],
                key_path)
    assert len(raised.value.problems) == 1
    p = raised.value.problems[0]
    assert p.file == str(paths[0]) and p.row is None
    assert p.message == f"given twice (also as {paths[0]}): give each file once"


def test_duplicates_with_the_same_time_and_different_answers_are_refused_even_with_latest(setup, tmp_path):
    _, packet, key_path = setup
    paths = full_responses(packet, tmp_path)
    frame = pd.read_csv(paths[0], dtype=str)
    again = frame.iloc[[0]].copy()
    again["present"] = "true" if again["present"].iloc[0] == "false" else "false"
    pd.concat([frame, again]).to_csv(paths[0], index=False)
    with pytest.raises(ResponsesError, match="the newest cannot be told"):
        unblind(packet.root, paths, key_path, latest=True)


@pytest.mark.parametrize("content, message", [(b"", "empty file"), ((",".join(RESPONSE_COLUMNS) + "\n").encode(),
                                                                      "no answers (a header only)")])
def test_empty_file(setup, tmp_path, content, message):
    _, packet, key_path = setup
    paths = full_responses(packet, tmp_path)
    paths[3].write_bytes(content)
    p = the_problem(packet, paths, key_path)
    assert (p.file, p.row, p.column) == (str(paths[3]), None, None)
    assert message in p.message


def test_reader_missing_a_round_is_reported_not_guessed(setup, tmp_path):
    _, packet, key_path = setup
    paths = full_responses(packet, tmp_path)
    with pytest.raises(ResponsesError, match="reader B has no answers for round 2"):
        unblind(packet.root, [p for p in paths if p.name != "B-round2.csv"], key_path)
    frame = pd.read_csv(paths[0], dtype=str)
    frame.iloc[:-3].to_csv(paths[0], index=False)
    with pytest.raises(ResponsesError, match=r"reader A, round 1 is incomplete: 3 of 24 answers missing"):
        unblind(packet.root, paths, key_path)


def test_bad_cells_each_named(setup, tmp_path):
    _, packet, key_path = setup
    rows = [["A", "1", packet.ids[0], "cardiomegaly", "maybe", "2024-01-01T00:00:00"],
            ["Z", "3", packet.ids[0], "cardiomegaly", "true", "yesterday"],
            ["A", "x", "", "cardiomegaly", "true", "2024-01-01T00:00:00"]]
    path = write_responses(tmp_path / "bad.csv", rows)
    with pytest.raises(ResponsesError) as excinfo:
        read_responses(path, packet)
    found = {(p.row, p.column) for p in problems_of(excinfo)}
    assert found == {(1, "present"), (2, "reader"), (2, "round"), (2, "answered_at"), (3, "round"),
                     (3, "blinded_id")}
    extra = write_responses(tmp_path / "extra.csv", [], columns=(*RESPONSE_COLUMNS, "gvr_id"))
    with pytest.raises(ResponsesError, match="unexpected column"):
        read_responses(extra, packet)


def test_key_of_another_packet_and_no_files(setup, tmp_path):
    study, packet, key_path = setup
    other = make_packet(study, tmp_path / "other", key_path=tmp_path / "other.csv", per_model=3, rng=12)
    paths = full_responses(packet, tmp_path)
    with pytest.raises(PacketError, match="not those of the packet"):
        unblind(packet.root, paths, other.key_path)
    with pytest.raises(ResponsesError, match="no responses file given"):
        unblind(packet.root, [], key_path)
    broken = tmp_path / "broken.csv"
    broken.write_text("blinded_id,gvr_id\nX,Y\n")
    with pytest.raises(TableValidationError):
        unblind(packet.root, paths, broken)


def test_cli_unblind_to_csv_and_into_the_bundle(setup, tmp_path):
    study, packet, key_path = setup
    bundle_copy = tmp_path / "bundle"
    shutil.copytree(study, bundle_copy)
    paths = [str(p) for p in full_responses(packet, tmp_path)]
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    result = runner.invoke(app, ["unblind", str(packet.root), *paths, "--key", str(key_path),
                                 "--out", str(tmp_path / "assessments.csv")])
    assert result.exit_code == 0, result.output
    table = load_table(tmp_path / "assessments.csv", "reader_assessments")
    assert len(table) == 2 * 2 * 6 * 4

    result = runner.invoke(app, ["unblind", str(packet.root), *paths, "--key", str(key_path),
                                 "--bundle", str(bundle_copy)])
    assert result.exit_code == 0, result.output
    assert f"next: gvr reproduce {bundle_copy}" in result.output  # what turns the answers into Table 2
    bundle = Bundle(bundle_copy)
    assert bundle.files["tables/reader_assessments.parquet"].stage == STAGE == "readers-human"
    pd.testing.assert_frame_equal(bundle.read_table("reader_assessments"), table)
    # the GVRs read are an input: made again, the answers are out of date (validate and the analysis say so)
    assert list(bundle.stages[STAGE]["inputs"]) == ["tables/gvr_index.parquet"]

    result = runner.invoke(app, ["unblind", str(packet.root), *paths[:-1], "--key", str(key_path),
                                 "--out", str(tmp_path / "x.csv")])
    assert result.exit_code == 1 and "reader B has no answers for round 2" in result.output  # input data: 1
    assert "the responses given (" in result.output  # not named as if the first file lacked them

    # a study with the same GVR ids whose pictures differ (another bundle of the same seed and config, or this
    # one explained again): the ids all match, the pictures do not, and the answers are refused
    other = tmp_path / "remade"
    shutil.copytree(study, other)
    moved = Bundle(other)
    key = load_table(key_path, "reading_key")
    path = moved.read_table("gvr_index").set_index("gvr_id").loc[key["gvr_id"].iloc[0], "overlay_path"]
    with moved.stage("explain-again", config={"edit": 1}) as stage:
        stage.write_image(path, 255 - moved.read_image(path))
    result = runner.invoke(app, ["unblind", str(packet.root), *paths, "--key", str(key_path), "--bundle", str(other)])
    assert result.exit_code == 2 and "the readers saw other pictures than the study" in result.output, result.output
    assert "tables/reader_assessments.parquet" not in Bundle(other).files
    assert not (tmp_path / "x.csv").exists()
    result = runner.invoke(app, ["unblind", str(packet.root), *paths, "--key", str(key_path)])
    assert result.exit_code == 2 and "exactly one of --bundle" in result.output
    typo = tmp_path / "bundel"  # a mistyped --bundle used to become a new bundle holding the answers alone
    result = runner.invoke(app, ["unblind", str(packet.root), *paths, "--key", str(key_path), "--bundle", str(typo)])
    assert result.exit_code != 0 and not typo.exists()
    # another study's bundle: one without GVRs, and one whose GVRs are not those read
    other = tmp_path / "other"
    shutil.copytree(study, other)
    index = Bundle(other).read_table("gvr_index")
    with Bundle(other).stage("explain-other", config={"x": 1}) as st:
        st.write_table("gvr_index", index.assign(gvr_id=index["gvr_id"] + "-x"))
    result = runner.invoke(app, ["unblind", str(packet.root), *paths, "--key", str(key_path), "--bundle", str(other)])
    assert result.exit_code == 2 and "does not belong to the study" in result.output
    assert "not in its GVR index" in result.output
    assert "tables/reader_assessments.parquet" not in Bundle(other).files


def test_packet_fixture_has_expected_shape(setup):
    _, packet, _ = setup
    assert load_packet(packet.root).rounds == 2 and len(packet.ids) == 6


def test_a_blank_line_between_answers_is_refused_by_its_line(setup, tmp_path):
    """The reader skipped it, and every later problem was named a line off (row 8 (line 9) for line 10)."""
    _, packet, key_path = setup
    paths = full_responses(packet, tmp_path)
    lines = paths[0].read_text().splitlines(keepends=True)
    paths[0].write_text("".join(lines[:4] + ["\n"] + lines[4:]))
    p = the_problem(packet, paths, key_path)
    assert p.file == str(paths[0]) and p.row == 4 and "a blank line between rows: remove it" in p.message
