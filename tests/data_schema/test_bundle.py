"""The study bundle: atomic writes, manifest provenance, hash checks and stage caching."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from data_schema import (
    Bundle,
    BundlePathError,
    ManifestMismatchError,
    NotInManifestError,
    TableValidationError,
    validate_bundle,
)
from data_schema.provenance import config_hash
from tests.examples import examples

CFG = {"profile": "tiny", "n": 3}


class Opaque:
    """An arbitrary class: weights_only loading must refuse it."""


def build(root, seed=1, config=CFG):
    bundle = Bundle(root)
    ex = examples()
    with bundle.stage("cohort", config=config, seed=seed) as st:
        st.write_table("patients", ex["patients"])
        st.write_table("radiographs", ex["radiographs"])
        for i in range(1, 4):
            st.write_image(f"images/i{i}.png", np.full((8, 8), 40 * i, np.uint8))
        st.write_array("arrays/latents.npy", np.arange(6, dtype=np.float32).reshape(2, 3))
        st.write_array("images/radiographs-00000.npy", np.zeros((3, 8, 8), np.uint8))
        st.write_array("masks/i1.npz", {"heart": np.eye(4, dtype=bool), "effusion": np.zeros((4, 4), bool)})
    return bundle


def manifest(root):
    return json.loads((root / "manifest.json").read_text())


def test_round_trip_of_every_kind(tmp_path):
    bundle = build(tmp_path)
    pd.testing.assert_frame_equal(bundle.read_table("patients"), examples()["patients"])
    pd.testing.assert_frame_equal(bundle.read_table("radiographs"), examples()["radiographs"])
    assert bundle.read_image("images/i2.png").tolist() == np.full((8, 8), 80, np.uint8).tolist()
    np.testing.assert_array_equal(bundle.read_array("arrays/latents.npy"), np.arange(6).reshape(2, 3))
    masks = bundle.read_array("masks/i1.npz")
    assert set(masks) == {"heart", "effusion"} and masks["heart"].dtype == bool


def test_manifest_records_provenance(tmp_path):
    build(tmp_path, seed=42)
    rec = manifest(tmp_path)["files"]["tables/patients.parquet"]
    assert rec["schema"] == "patients"
    assert rec["stage"] == "cohort"
    assert rec["seed"] == 42
    assert rec["config_hash"] == config_hash(CFG)
    assert len(rec["sha256"]) == 64
    assert {"python", "numpy", "pandas", "pandera"} <= set(rec["versions"])
    assert rec["git_commit"]
    assert manifest(tmp_path)["stages"]["cohort"]["outputs"][0] == "arrays/latents.npy"


def test_same_seed_gives_the_same_bytes(tmp_path):
    a, b = build(tmp_path / "a"), build(tmp_path / "b")
    hashes_a = {k: r.sha256 for k, r in a.files.items()}
    hashes_b = {k: r.sha256 for k, r in b.files.items()}
    assert hashes_a == hashes_b


def test_invalid_table_writes_nothing_and_keeps_the_old_file(tmp_path):
    bundle = build(tmp_path)
    before = (tmp_path / "tables/patients.parquet").read_bytes()
    bad = examples()["patients"].assign(age_years=[74.0, 130.0, -2.0])
    with pytest.raises(TableValidationError) as info:
        with bundle.stage("cohort", config=CFG, seed=1) as st:
            st.write_table("patients", bad)
    assert [p.row for p in info.value.problems] == [2, 3]
    assert "tables/patients.parquet" in str(info.value)
    assert (tmp_path / "tables/patients.parquet").read_bytes() == before
    assert not list(tmp_path.rglob("*.tmp"))
    pd.testing.assert_frame_equal(Bundle(tmp_path).read_table("patients"), examples()["patients"])


def test_hash_mismatch_names_the_file(tmp_path):
    build(tmp_path)
    target = tmp_path / "arrays/latents.npy"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ManifestMismatchError, match=r"arrays/latents\.npy.*content changed since stage 'cohort'"):
        Bundle(tmp_path).read_array("arrays/latents.npy")
    problems = validate_bundle(tmp_path)
    assert [p.file for p in problems] == [str(target)]


def test_unrecorded_or_missing_files(tmp_path):
    bundle = build(tmp_path)
    with pytest.raises(NotInManifestError, match="not recorded"):
        bundle.read_array("arrays/other.npy")
    (tmp_path / "images/i3.png").unlink()
    with pytest.raises(NotInManifestError, match="missing on disk"):
        bundle.read_image("images/i3.png")


@pytest.mark.parametrize("bad", ["../x.png", "/tmp/x.png", "images/../../x.png", "C:\\x.png"])
def test_paths_leaving_the_bundle_are_refused(tmp_path, bad):
    bundle = Bundle(tmp_path / "b")
    with pytest.raises(BundlePathError):
        with bundle.stage("s", config={}) as st:
            st.write_image(bad, np.zeros((2, 2), np.uint8))
    assert not (tmp_path / "x.png").exists()


def test_symlink_out_of_the_bundle_is_refused(tmp_path):
    bundle = Bundle(tmp_path / "b")
    (tmp_path / "outside").mkdir()
    (tmp_path / "b" / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(BundlePathError, match="outside the bundle"):
        bundle.path("link/x.png")


def test_stage_is_skipped_only_when_nothing_changed(tmp_path):
    bundle = Bundle(tmp_path)
    calls = []

    def cohort(st):
        calls.append("cohort")
        st.write_table("patients", examples()["patients"])

    def split(st):
        calls.append("split")
        st.write_table("splits", examples()["splits"])

    inputs = ["tables/patients.parquet"]
    assert bundle.run_stage("cohort", cohort, config=CFG, seed=1)
    assert bundle.run_stage("split", split, config=CFG, seed=1, inputs=inputs)
    assert not bundle.run_stage("cohort", cohort, config=CFG, seed=1)
    assert not Bundle(tmp_path).run_stage("split", split, config=CFG, seed=1, inputs=inputs)
    assert calls == ["cohort", "split"]
    # a new seed or config reruns the stage; a changed input reruns its consumers
    assert bundle.run_stage("cohort", cohort, config=CFG, seed=2)
    assert not bundle.run_stage("split", split, config=CFG, seed=1, inputs=inputs)  # same bytes, same hash
    assert bundle.run_stage("cohort", cohort, config={**CFG, "n": 4}, seed=2)

    def other_cohort(st):
        st.write_table("patients", examples()["patients"].assign(age_years=[1.0, 2.0, 3.0]))

    bundle.run_stage("cohort", other_cohort, config=CFG, seed=3)
    assert bundle.run_stage("split", split, config=CFG, seed=1, inputs=inputs)
    assert calls.count("split") == 2


def test_a_stage_that_dies_is_not_current(tmp_path):
    bundle = Bundle(tmp_path)

    def good(st):
        st.write_table("patients", examples()["patients"])

    bundle.run_stage("cohort", good, config=CFG)

    def dies(st):
        st.write_table("patients", examples()["patients"])
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        bundle.run_stage("cohort", dies, config=CFG, force=True)
    reopened = Bundle(tmp_path)
    assert not reopened.is_current("cohort", config=CFG)
    assert "cohort" not in reopened.stages
    # what was written is recorded with its hash, but the stage itself is incomplete: validate says so
    assert [p.message for p in validate_bundle(tmp_path)] == [
        "stage 'cohort' did not complete (it wrote 1 file(s), then failed or was stopped): rerun it"]
    assert reopened.run_stage("cohort", good, config=CFG)
    assert validate_bundle(tmp_path) == []


def test_a_stage_refused_before_writing_keeps_its_earlier_run(tmp_path):
    """`gvr train --config <another image size>` refused the config and left a finished train stage
    incomplete: nothing had been replaced, yet validate said to rerun it and the next run trained again."""
    bundle = Bundle(tmp_path)

    def good(st):
        st.write_table("patients", examples()["patients"])

    bundle.run_stage("cohort", good, config=CFG)
    record = Bundle(tmp_path).stages["cohort"]
    for interruption in (ValueError, KeyboardInterrupt):
        def body(st, interruption=interruption):
            raise interruption("stopped before writing")

        with pytest.raises(interruption):
            bundle.run_stage("cohort", body, config={**CFG, "n": 4})
        reopened = Bundle(tmp_path)
        assert "cohort" in reopened.stages and reopened.is_current("cohort", config=CFG)
        assert reopened.stages["cohort"] == record
        assert validate_bundle(tmp_path) == []
    # a write stopped just after it replaced its file counts as written (the record would describe the old bytes)
    import data_schema.bundle as bundle_module

    def replaced_then_stopped(full, data):
        full.write_bytes(data)
        raise KeyboardInterrupt

    def writes(st):
        st.write_bytes("note.txt", b"new")

    bundle.run_stage("notes", lambda st: st.write_bytes("note.txt", b"old"), config=CFG)
    original = bundle_module.atomic_write_bytes
    bundle_module.atomic_write_bytes = replaced_then_stopped
    try:
        with pytest.raises(KeyboardInterrupt):
            bundle.run_stage("notes", writes, config={**CFG, "n": 4})
    finally:
        bundle_module.atomic_write_bytes = original
    assert "notes" not in Bundle(tmp_path).stages
    # one file replaced is enough to make the earlier record false: then the stage is incomplete
    def dies(st):
        st.write_table("patients", examples()["patients"])
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        bundle.run_stage("cohort", dies, config={**CFG, "n": 4})
    assert "cohort" not in Bundle(tmp_path).stages


def test_deleted_output_makes_a_stage_stale(tmp_path):
    bundle = build(tmp_path)
    assert bundle.is_current("cohort", config=CFG, seed=1)
    (tmp_path / "images/i1.png").unlink()
    assert not bundle.is_current("cohort", config=CFG, seed=1)


def test_validate_bundle_reports_dangling_paths_and_unrecorded_tables(tmp_path):
    bundle = build(tmp_path)
    (tmp_path / "images/radiographs-00000.npy").unlink()
    examples()["patients"].assign(sex=["F", "X", "M"]).to_csv(tmp_path / "tables/patients.csv", index=False)
    problems = validate_bundle(bundle.root)
    text = "\n".join(map(str, problems))
    assert "images/radiographs-00000.npy: recorded in the manifest but missing on disk" in text
    for row in (1, 2, 3):
        assert f"radiographs.parquet, row {row}, column 'image_path': file does not exist in the bundle" in text
    assert "patients.csv: table not recorded in manifest.json" in text
    assert "patients.csv, row 2 (line 3), column 'sex'" in text


def test_a_stage_stopped_before_its_images_is_said_once_not_row_by_row(tmp_path):
    """An interrupted cohort stage had `gvr validate` print one line per radiograph whose image was not yet
    written (10,048 lines for the default cohort), the line that says what happened scrolled away."""
    bundle = Bundle(tmp_path)
    with pytest.raises(RuntimeError):
        with bundle.stage("cohort", config=CFG, seed=1) as st:
            st.write_table("radiographs", examples()["radiographs"])  # its images never written
            raise RuntimeError("stopped")
    assert [p.message for p in validate_bundle(tmp_path)] == [
        "stage 'cohort' did not complete (it wrote 1 file(s), then failed or was stopped): rerun it"]


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    import torch
    bundle = Bundle(tmp_path)
    state = {"model": {"w": torch.arange(4.0)}, "config": {"latent_dim": 100}, "seed": 3, "step": 10,
             "git_commit": "abc"}
    with bundle.stage("train", config=CFG, seed=3) as st:
        st.write_checkpoint("checkpoints/decoder.pt", state)
    loaded = bundle.read_checkpoint("checkpoints/decoder.pt")
    assert torch.equal(loaded["model"]["w"], state["model"]["w"]) and loaded["step"] == 10


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path):


    bundle = Bundle(tmp_path)
    with pytest.raises(TypeError, match="weights_only"):
        with bundle.stage("train", config=CFG) as st:
            st.write_checkpoint("checkpoints/x.pt", {"thing": Opaque()})
    assert not (tmp_path / "checkpoints/x.pt").exists()


def test_table_read_by_path_uses_the_recorded_schema(tmp_path):
    bundle = Bundle(tmp_path)
    with bundle.stage("readers", config=CFG) as st:
        st.write_table("reading_key", examples()["reading_key"])
    key = bundle.read_table("reading_key.csv")
    pd.testing.assert_frame_equal(key, examples()["reading_key"])


def test_corrupt_manifest_is_reported(tmp_path):
    (tmp_path / "manifest.json").write_text("{ not json")
    problems = validate_bundle(tmp_path)
    assert len(problems) == 1 and problems[0].message.startswith("not a readable manifest")
    assert problems[0].file == str(tmp_path / "manifest.json")


def test_a_bundle_object_sees_what_another_one_wrote(tmp_path):
    first = build(tmp_path)
    other = Bundle(tmp_path)
    with other.stage("cohort", config=CFG, seed=9) as st:
        st.write_table("patients", examples()["patients"].assign(age_years=[1.0, 2.0, 3.0]))
    assert first.read_table("patients")["age_years"].tolist() == [1.0, 2.0, 3.0]
    assert first.stages["cohort"]["seed"] == 9


def test_a_rerun_forgets_and_removes_what_the_stage_no_longer_writes(tmp_path):
    bundle = build(tmp_path)
    with bundle.stage("cohort", config=CFG, seed=2) as st:
        st.write_table("patients", examples()["patients"])
    assert "arrays/latents.npy" not in bundle.files and not (tmp_path / "arrays/latents.npy").exists()
    assert set(bundle.files) == {"tables/patients.parquet"}
    assert validate_bundle(tmp_path) == []


def test_json_is_strict(tmp_path):
    bundle = Bundle(tmp_path)
    with bundle.stage("s", config={}) as st:
        st.write_json("x.json", {"a": float("nan"), "b": [np.float32(1.5), np.int64(2), np.inf], "c": np.bool_(True)})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": None, "b": [1.5, 2, None], "c": True}


def test_validating_a_missing_directory_does_not_create_it(tmp_path):
    problems = validate_bundle(tmp_path / "nope")
    assert len(problems) == 1 and problems[0].message == "not a directory"
    assert not (tmp_path / "nope").exists()


# ---- currency by content, one writer at a time ------------------------------------------------------


def _two_stages(root):
    import pandas as pd

    bundle = Bundle(root)
    patients = pd.DataFrame({"patient_id": ["p1", "p2"], "sex": ["F", "M"], "age_years": [71.0, 64.0]})
    with bundle.stage("first", config={"n": 1}, seed=0) as stage:
        stage.write_table("patients", patients)
    with bundle.stage("second", config={}, inputs=["tables/patients.parquet"]) as stage:
        stage.write_bytes("out/summary.txt", b"two patients\n")
    return bundle


def test_a_stage_is_not_current_when_an_input_changed_with_the_same_size(tmp_path):
    bundle = _two_stages(tmp_path / "b")
    assert bundle.is_current("second", config={}, inputs=["tables/patients.parquet"])
    path = tmp_path / "b/tables/patients.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other content
    path.write_bytes(bytes(data))
    assert not Bundle(tmp_path / "b").is_current("second", config={}, inputs=["tables/patients.parquet"])
    assert not Bundle(tmp_path / "b").is_current("first", config={"n": 1}, seed=0)


def test_a_stage_is_not_current_when_an_output_changed_with_the_same_size(tmp_path):
    bundle = _two_stages(tmp_path / "b")
    (tmp_path / "b/out/summary.txt").write_bytes(b"six patients\n")
    assert not bundle.is_current("second", config={}, inputs=["tables/patients.parquet"])


_WRITER = """
import sys, time
from pathlib import Path
from data_schema import Bundle
root, name, release = sys.argv[1], sys.argv[2], Path(sys.argv[3])
bundle = Bundle(root)
with bundle.stage(name, config={"who": name}) as stage:
    stage.write_bytes(f"{name}/started.txt", b"x")
    while not release.exists():  # hold the bundle until the test says
        time.sleep(0.05)
    stage.write_bytes(f"{name}/done.txt", b"y")
"""


def test_two_processes_writing_one_bundle_keep_both_stage_records(tmp_path, clean_env):
    import subprocess
    import sys
    import time

    root, release = tmp_path / "b", tmp_path / "release"
    Bundle(root)
    env = {**clean_env, "GVR_PROGRESS": "0"}

    def writer(name: str, **extra):
        return subprocess.Popen([sys.executable, "-c", _WRITER, str(root), name, str(release)],
                                env={**env, **extra}, stderr=subprocess.PIPE, text=True)

    def wait_for(path) -> None:
        deadline = time.monotonic() + 120
        while not path.exists():
            assert time.monotonic() < deadline, f"{path} never appeared"
            time.sleep(0.05)

    first = writer("analyse")
    wait_for(root / "analyse/started.txt")  # the first writer holds the bundle from here until released
    refused = writer("explain", GVR_BUNDLE_WAIT="0")
    _, refused_err = refused.communicate(timeout=120)
    assert refused.returncode != 0 and "is being written by pid" in refused_err and "stage analyse" in refused_err
    second = writer("explain")
    time.sleep(1.0)
    assert not (root / "explain/started.txt").exists() and second.poll() is None  # waiting for the lock
    release.touch()
    assert first.wait(timeout=120) == 0 and second.wait(timeout=120) == 0, second.stderr.read()
    bundle = Bundle(root)
    assert {"analyse", "explain"} <= set(bundle.stages)
    assert set(bundle.files) == {"analyse/started.txt", "analyse/done.txt", "explain/started.txt", "explain/done.txt"}
    assert validate_bundle(root) == []


def test_validate_reports_a_stage_that_did_not_complete(tmp_path):
    bundle = _two_stages(tmp_path / "b")
    with pytest.raises(RuntimeError):
        with bundle.stage("second", config={"other": 1}, inputs=["tables/patients.parquet"]) as stage:
            stage.write_bytes("out/partial.txt", b"half")
            raise RuntimeError("killed")
    problems = [p.message for p in validate_bundle(tmp_path / "b")]
    assert problems == ["stage 'second' did not complete (it wrote 2 file(s), then failed or was stopped): rerun it"]


def test_a_manifest_that_cannot_be_read_does_not_keep_the_lock(tmp_path):
    from data_schema import bundle as bundle_module
    from data_schema.bundle import BundleError

    bundle = build(tmp_path)
    good = (tmp_path / "manifest.json").read_text()
    (tmp_path / "manifest.json").write_text("{ broken")
    with pytest.raises(BundleError, match="not a readable manifest"):
        with bundle.stage("b", config=CFG):
            pass
    assert tmp_path.resolve() not in bundle_module._HELD and bundle._lock_depth == 0
    (tmp_path / "manifest.json").write_text(good)
    with bundle.writing("another try"):  # nothing holds the bundle any more
        assert bundle_module._HELD[tmp_path.resolve()][1] == 1


def test_a_second_bundle_object_of_this_process_cannot_write_inside_the_first(tmp_path):
    """Each object keeps its own copy of the manifest: nested, the outer one saved over the inner one's records."""
    from data_schema.bundle import BundleError

    outer, inner = build(tmp_path), Bundle(tmp_path)
    with outer.stage("outer", config=CFG) as st:
        st.write_bytes("outer/1.txt", b"1")
        with pytest.raises(BundleError, match="another Bundle object of this process"):
            with inner.stage("inner", config=CFG):
                pass
        st.write_bytes("outer/2.txt", b"2")
    assert {"outer/1.txt", "outer/2.txt"} <= set(Bundle(tmp_path).files)
    with inner.stage("inner", config=CFG) as st:  # once the first is done, the second may write
        st.write_bytes("inner/1.txt", b"1")
    assert {"outer", "inner"} <= set(Bundle(tmp_path).stages)


def test_nested_bundles_are_their_own_and_killed_writes_are_found_then_cleared(tmp_path):
    """The shortcut benchmark keeps study bundles inside the study's work folder: their tables are theirs,
    not unrecorded tables of the study. A write killed mid-way leaves a partial file: reported, and removed
    by the next writer."""
    outer = build(tmp_path)
    inner = Bundle(tmp_path / "work/shortcuts/seed-0/strength-000")
    with inner.stage("cohort", config=CFG) as st:
        st.write_table("patients", examples()["patients"])
    assert validate_bundle(tmp_path) == [] and validate_bundle(inner.root) == []
    leftover = tmp_path / "tables/.patients.parquet.k3j9x.tmp"
    leftover.write_bytes(b"half")
    with outer.stage("now", config=CFG):  # a file written in the last minute may be a write in progress
        pass
    assert leftover.exists()
    os.utime(leftover, (leftover.stat().st_atime - 120, leftover.stat().st_mtime - 120))
    (problem,) = validate_bundle(tmp_path)
    assert problem.file == str(leftover) and "killed" in problem.message
    with outer.stage("more", config=CFG) as st:
        st.write_bytes("more/x.txt", b"x")
    assert not leftover.exists() and validate_bundle(tmp_path) == []


def test_a_csv_table_is_written_only_when_it_reads_back_as_it_was(tmp_path):
    """An empty text (CSV cannot tell it from a missing value) or a timestamp finer than a microsecond
    passed the frame's checks and then failed to read back, or came back changed."""
    from data_schema import TableValidationError
    from data_schema.registry import get_spec
    from data_schema.validate import check_frame

    bundle = Bundle(tmp_path)
    reliance = examples()["model_reliance"]
    blank = reliance.assign(intervention=[""] + list(reliance["intervention"][1:]))
    assert check_frame(blank, get_spec("model_reliance")) == []  # a valid frame
    with pytest.raises(TableValidationError, match=r"row 1.*'intervention': cannot be written as CSV: missing value"):
        with bundle.stage("fidelity", config=CFG) as st:
            st.write_table("model_reliance", blank, "tables/model_reliance.csv")
    bnp = examples()["bnp_results"]
    stamped = bnp.assign(collected_at=bnp["collected_at"] + pd.Timedelta(nanoseconds=7))
    with pytest.raises(TableValidationError, match="finer than a microsecond"):
        with bundle.stage("other", config=CFG) as st:
            st.write_table("bnp_results", stamped, "tables/bnp.csv")
    assert "tables/model_reliance.csv" not in bundle.files and "tables/bnp.csv" not in bundle.files


def test_a_leftover_that_cannot_be_removed_does_not_stop_the_write(tmp_path, monkeypatch):
    from pathlib import Path

    from data_schema import bundle as bundle_module

    bundle = build(tmp_path)
    leftover = tmp_path / "tables/.patients.parquet.k3j9x.tmp"
    leftover.write_bytes(b"half")
    os.utime(leftover, (0, 0))
    real = Path.unlink

    def refuse(self, *args, **kwargs):
        if self.name.endswith(".tmp"):
            raise PermissionError(f"read-only: {self}")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", refuse)
    with bundle.stage("more", config=CFG) as st:
        st.write_bytes("more/x.txt", b"x")
    assert leftover.exists() and "more/x.txt" in bundle.files
    assert tmp_path.resolve() not in bundle_module._HELD


def test_a_table_kept_once_per_model_and_method_is_read_and_written_by_its_path(tmp_path):
    """``image_rationales`` has no single location: by name alone it is refused with its path pattern;
    by path it round-trips, and ``gvr schema list`` shows the pattern it is really written at."""
    from typer.testing import CliRunner

    from data_schema import BundleError
    from modelling.cli.app import app

    bundle = Bundle(tmp_path)
    table = examples()["image_rationales"]
    with bundle.stage("image_gvr", config=CFG) as st:
        with pytest.raises(ValueError, match=r"image_gvr/<model>/<method>/rationales\.parquet"):
            st.write_table("image_rationales", table)
        st.write_table("image_rationales", table, "image_gvr/mine/gvr/rationales.parquet")
    with pytest.raises(BundleError, match="read it by its path"):
        bundle.read_table("image_rationales")
    pd.testing.assert_frame_equal(bundle.read_table("image_gvr/mine/gvr/rationales.parquet"), table)
    listed = CliRunner().invoke(app, ["schema", "list"]).output
    assert "image_gvr/<model>/<method>/rationales.parquet" in listed and "``" not in listed


def test_validate_reports_a_stage_whose_input_was_written_again_after_it_ran(tmp_path):
    """Data ingested again under models trained on the old data: each file is intact, but the stage that
    read the old table is out of date, and validate says so (it had called the bundle valid)."""
    bundle = build(tmp_path)
    with bundle.stage("train", config=CFG, inputs=["tables/patients.parquet"]) as st:
        st.write_array("arrays/model.npy", np.zeros(3, np.float32))
    assert validate_bundle(bundle.root) == []
    with bundle.stage("cohort", config=CFG | {"n": 2}, seed=1) as st:
        st.write_table("patients", examples()["patients"].iloc[:2])
        st.write_table("radiographs", examples()["radiographs"])
        for i in range(1, 4):
            st.write_image(f"images/i{i}.png", np.full((8, 8), 40 * i, np.uint8))
        st.write_array("images/radiographs-00000.npy", np.zeros((3, 8, 8), np.uint8))
    text = "\n".join(map(str, validate_bundle(bundle.root)))
    assert ("stage 'train' is out of date: its input tables/patients.parquet was written again by stage 'cohort' "
            "after it ran") in text
    assert not Bundle(bundle.root).is_current("train", config=CFG, inputs=["tables/patients.parquet"])
