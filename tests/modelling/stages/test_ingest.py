"""A real user's data: clean inputs of every kind ingest, errors point at the input row, compressed
DICOM decodes, only radiographs are kept, and no command writes the phantom into a real bundle."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file

from data_schema import Bundle, RealDataBundleError, validate_bundle
from data_schema.bundle import ForeignFolderError
from modelling.cohort.ingest import IngestError, IngestSources, Pseudonymiser, read_dicom
from modelling.config import load_config
from modelling.stages.cohort import build_cohort
from modelling.stages.ingest import build_from_real_data
from modelling.stages.pipeline import PendingStagesError, reproduce
from tests.modelling.cohort.test_ingest import SALT, gradient, make_dicom

TINY = load_config("tiny")


def build(root: Path, src: IngestSources, name: str = "bundle"):
    return build_from_real_data(TINY, root / name, src, Pseudonymiser(SALT))


def clean_dicom(tmp_path: Path, n_patients: int = 6) -> IngestSources:
    d = tmp_path / "dicom"
    d.mkdir()
    patients, bnp = ["patient_id,sex,birth_date"], ["patient_id,collected_at,bnp_ng_l"]
    for i in range(n_patients):
        for k in range(2):
            make_dicom(d / f"p{i}-{k}.dcm", patient=f"MRN{i:04d}", uid=f"1.2.3.{i}.{k}",
                       when=(f"201{k}0{1 + i % 9}1{k}", "101500"), view="PA" if k == 0 else "AP")
        patients.append(f"MRN{i:04d},{'FM'[i % 2]},19{40 + i}-01-01")
        bnp.append(f"MRN{i:04d},2010-0{1 + i % 9}-10 12:00,{40 + 10 * i if i % 3 == 0 else 100 + 90 * i}")
    (tmp_path / "patients.csv").write_text("\n".join(patients) + "\n")
    (tmp_path / "bnp.csv").write_text("\n".join(bnp) + "\n")
    return IngestSources(patients_csv=tmp_path / "patients.csv", bnp_csv=tmp_path / "bnp.csv", dicom_dir=d)


def clean_pngs(tmp_path: Path) -> IngestSources:
    (tmp_path / "img").mkdir()
    rows = ["file,patient_id,acquired_at,view"]
    for i in range(4):
        iio.imwrite(tmp_path / f"img/x{i}.png", (gradient(50, 40) // 16 + i).astype(np.uint8))
        rows.append(f"img/x{i}.png,P{i % 2},201{i}-03-04 10:00,PA")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "patients.csv").write_text("patient_id,sex,age_years\nP0,M,70\nP1,F,64\n")
    (tmp_path / "bnp.csv").write_text("patient_id,collected_at,bnp_ng_l\nP0,2010-03-04 12:00,230\nP1,2011-03-04 09:00,80\n")
    return IngestSources(patients_csv=tmp_path / "patients.csv", bnp_csv=tmp_path / "bnp.csv",
                         manifest_csv=tmp_path / "manifest.csv")


# ---- clean inputs -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dicom", "png"])
def test_clean_inputs_with_nothing_excluded_are_ingested(kind, tmp_path):
    src = clean_dicom(tmp_path) if kind == "dicom" else clean_pngs(tmp_path)
    bundle, info = build(tmp_path, src)
    assert info["excluded"] == 0 and info["excluded_by_reason"] == {} and info["radiographs"] in (12, 4)
    assert "cohort" in bundle.stages and bundle.origin == "real"
    assert validate_bundle(bundle.root) == []


def test_compressed_dicom_decodes(tmp_path):
    """pydicom's own compressed test files, turned into DX chest radiographs: JPEG, JPEG-LS, JPEG 2000, RLE."""
    for name in ("JPEG2000.dcm", "JPGExtended.dcm", "JPEGLSNearLossless_08.dcm", "MR_small_RLE.dcm",
                 "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"):
        ds = pydicom.dcmread(get_testdata_file(name))
        ds.Modality, ds.ViewPosition, ds.PatientID = "DX", "PA", "MRN1"
        ds.AcquisitionDate, ds.AcquisitionTime = "20120304", "101500"
        ds.save_as(tmp_path / name)
        item = read_dicom(tmp_path / name)
        assert item.pixels.ndim == 2 and np.isfinite(item.pixels).all() and item.pixels.max() == 1.0, name


@pytest.mark.parametrize(("name", "reason"), [
    ("CT_small.dcm", "modality CT is not a radiograph"),
    ("MR_small.dcm", "modality MR is not a radiograph"),
    ("examples_palette.dcm", "modality US is not a radiograph"),
    ("SC_rgb_jpeg.dcm", "modality OT is not a radiograph"),
])
def test_only_radiographs_are_kept(name, reason):
    with pytest.raises(ValueError, match=reason):
        read_dicom(Path(get_testdata_file(name)))


def test_secondary_captures_only_when_asked_and_only_grayscale(tmp_path):
    with pytest.raises(ValueError, match="photometric interpretation RGB is not grayscale"):
        read_dicom(Path(get_testdata_file("SC_rgb_jpeg.dcm")), modalities={"CR", "DX", "SC", "OT"})
    gray = tmp_path / "gray.dcm"
    make_dicom(gray)
    ds = pydicom.dcmread(gray)
    ds.Modality = "OT"
    ds.save_as(gray)
    with pytest.raises(ValueError, match="--secondary-capture keeps SC and OT"):
        read_dicom(gray)
    assert read_dicom(gray, modalities={"CR", "DX", "SC", "OT"}).view == "PA"


def test_every_file_excluded_gives_every_reason_counted(tmp_path):
    src = clean_dicom(tmp_path, n_patients=2)
    for path in src.dicom_dir.iterdir():
        ds = pydicom.dcmread(path)
        ds.Modality = "CT" if path.name.endswith("0.dcm") else "DX"
        ds.ViewPosition = "PA" if ds.Modality == "CT" else "LL"
        ds.save_as(path)
    (src.dicom_dir / "notes.txt").write_text("not dicom")
    with pytest.raises(IngestError) as info:
        build(tmp_path, src)
    message = info.value.problems[0].message
    assert "no usable frontal radiograph: 5 file(s) excluded" in message
    assert "2 modality CT is not a radiograph" in message and "2 not a frontal view" in message
    assert "1 not a DICOM file, e.g. " + str(src.dicom_dir / "notes.txt") in message  # which file, not a count alone
    assert "2 not a frontal view, e.g. " in message
    assert not (tmp_path / "bundle/tables").exists()


# ---- errors at the input row --------------------------------------------------------------------


def _problems(tmp_path, src) -> list:
    existed = (tmp_path / "bundle").exists()
    with pytest.raises(IngestError) as info:
        build(tmp_path, src)
    assert not (tmp_path / "bundle/tables").exists() and not (tmp_path / "bundle/images").exists()
    assert (tmp_path / "bundle").exists() == existed  # a refused ingest leaves no folder it created behind
    return info.value.problems


def test_an_impossible_bnp_is_refused_at_its_input_row(tmp_path):
    src = clean_dicom(tmp_path)
    with src.bnp_csv.open("a") as handle:
        handle.write("MRN0001,2010-02-10 12:00,1000000000\n")
    (problem,) = _problems(tmp_path, src)
    assert (problem.file, problem.row, problem.column) == (str(src.bnp_csv), 7, "bnp_ng_l")
    assert "above 100,000 ng/L" in problem.message


def test_a_birth_date_after_the_radiograph_is_refused_at_the_patients_row(tmp_path):
    src = clean_dicom(tmp_path)
    text = src.patients_csv.read_text().replace("MRN0002,F,1942-01-01", "MRN0002,F,2019-01-01")
    src.patients_csv.write_text(text)
    problem, bnp_problem = sorted(_problems(tmp_path, src), key=lambda p: p.file != str(src.patients_csv))
    assert (problem.file, problem.row, problem.column) == (str(src.patients_csv), 3, "birth_date")
    assert "after the patient's radiograph of 2010-03-10 10:15" in problem.message
    assert (bnp_problem.file, bnp_problem.row, bnp_problem.column) == (str(src.bnp_csv), 3, "collected_at")


def test_a_bnp_before_the_birth_date_is_refused_at_its_row(tmp_path):
    src = clean_dicom(tmp_path)
    with src.bnp_csv.open("a") as handle:
        handle.write("MRN0003,1930-05-06 08:00,250\n")  # MRN0003 was born 1943-01-01
    (problem,) = _problems(tmp_path, src)
    assert (problem.file, problem.row, problem.column) == (str(src.bnp_csv), 7, "collected_at")
    assert problem.message == "before the patient's birth date 1943-01-01 in the patients file"


def test_a_refused_ingest_keeps_a_folder_that_was_there(tmp_path):
    src = clean_dicom(tmp_path)
    (tmp_path / "bundle").mkdir()
    with src.bnp_csv.open("a") as handle:
        handle.write("MRN0001,2010-02-10 12:00,0\n")
    _problems(tmp_path, src)
    assert (tmp_path / "bundle").is_dir()
    # a folder of someone's own files is no bundle: refused before the inputs are read, and left as it was
    (tmp_path / "bundle/notes.txt").write_text("mine")
    with pytest.raises(ForeignFolderError, match="holds notes.txt"):
        build(tmp_path, src)
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("which", ["bnp", "patients"])
def test_a_header_only_file_is_one_problem(which, tmp_path):
    src = clean_dicom(tmp_path)
    path = src.bnp_csv if which == "bnp" else src.patients_csv
    path.write_text(path.read_text().splitlines()[0] + "\n")
    problems = _problems(tmp_path, src)
    assert [(p.file, p.message) for p in problems] == [(str(path), "no rows (only a header)")]


def test_a_latin1_file_is_one_problem_at_its_line(tmp_path):
    src = clean_dicom(tmp_path)
    text = src.patients_csv.read_text().replace("MRN0003,M,1943-01-01", "MRN0003,M,1943-01-01,Zoë")
    src.patients_csv.write_bytes(text.replace("patient_id,sex,birth_date", "patient_id,sex,birth_date,name")
                                 .encode("latin-1"))
    (problem,) = _problems(tmp_path, src)
    assert problem.file == str(src.patients_csv) and problem.row == 4
    assert "not UTF-8 text: byte 0xeb on line 5" in problem.message


def test_month_first_applies_to_birth_dates(tmp_path):
    src = clean_dicom(tmp_path)
    src.patients_csv.write_text(src.patients_csv.read_text().replace("1940-01-01", "12/25/1940"))
    assert "birth_date" in {p.column for p in _problems(tmp_path, src)}
    month_first = IngestSources(patients_csv=src.patients_csv, bnp_csv=src.bnp_csv, dicom_dir=src.dicom_dir,
                                dayfirst=False)
    bundle, info = build(tmp_path, month_first, name="mdy")
    assert info["radiographs"] == 12


def test_a_duplicate_manifest_row_is_reported_at_its_row(tmp_path):
    src = clean_pngs(tmp_path)
    with src.manifest_csv.open("a") as handle:
        handle.write("img/x1.png,P1,2011-03-04 10:00,PA\n")
    (problem,) = _problems(tmp_path, src)
    assert (problem.file, problem.row, problem.column, problem.value) == (str(src.manifest_csv), 5, "file", "img/x1.png")
    assert problem.message == "duplicate of row 2"


def test_the_same_file_under_another_spelling_is_a_duplicate(tmp_path):
    src = clean_pngs(tmp_path)
    with src.manifest_csv.open("a") as handle:
        handle.write("./img//x1.png,P1,2011-03-04 10:00,PA\n")
    (problem,) = _problems(tmp_path, src)
    assert (problem.row, problem.column, problem.value, problem.message) == (
        5, "file", "./img//x1.png", "duplicate of row 2")


def test_a_blank_line_or_a_value_over_lines_is_named_at_its_line(tmp_path):
    """pandas skips blank lines, so every problem after one was named a line too early."""
    src = clean_pngs(tmp_path)
    src.bnp_csv.write_text("patient_id,collected_at,bnp_ng_l\nP0,2010-03-04 12:00,230\n\nP1,2011-03-04 09:00,0\n\n")
    (problem,) = _problems(tmp_path, src)
    assert str(problem).startswith(f"{src.bnp_csv}, row 2 (line 3): a blank line between rows")
    src.bnp_csv.write_text('patient_id,collected_at,bnp_ng_l\nP0,"2010-03-04\n12:00",230\nP1,2011-03-04 09:00,80\n')
    (problem,) = _problems(tmp_path, src)
    assert problem.row == 1 and "runs over lines 2-3" in problem.message
    src.bnp_csv.write_text("patient_id,collected_at,bnp_ng_l\nP0,2010-03-04 12:00,230\nP1,2011-03-04 09:00,0\n")
    (problem,) = _problems(tmp_path, src)  # without them, row and line as before
    assert str(problem).startswith(f"{src.bnp_csv}, row 2 (line 3), column 'bnp_ng_l'")


def test_a_patients_file_without_sex_or_birth_date_names_both(tmp_path):
    src = clean_pngs(tmp_path)
    src.patients_csv.write_text("patient_id\nP0\nP1\n")
    problems = _problems(tmp_path, src)
    assert {p.column for p in problems if str(p.file) == str(src.patients_csv)} == {"sex", "birth_date"}


def test_an_absolute_path_is_refused_and_the_same_file_by_it_is_a_duplicate(tmp_path):
    """A manifest listing img/x1.png and the same file by its absolute path ingested it twice."""
    src = clean_pngs(tmp_path)
    with src.manifest_csv.open("a") as handle:
        handle.write(f"{(tmp_path / 'img/x1.png').resolve()},P1,2011-03-04 10:00,PA\n")
    (problem,) = _problems(tmp_path, src)
    assert (problem.row, problem.column) == (5, "file") and "an absolute path" in problem.message
    (tmp_path / "up").mkdir()  # the same file through a folder and back: relative, and still the same file
    src.manifest_csv.write_text(src.manifest_csv.read_text().replace(str((tmp_path / "img/x1.png").resolve()),
                                                                     "up/../img/x1.png"))
    (problem,) = _problems(tmp_path, src)
    assert (problem.row, problem.column, problem.message) == (5, "file", "duplicate of row 2")
    (tmp_path / "link").symlink_to(tmp_path / "img")
    src.manifest_csv.write_text(src.manifest_csv.read_text().replace("up/../img/x1.png", "link/x1.png"))
    (problem,) = _problems(tmp_path, src)
    assert (problem.row, problem.column, problem.message) == (5, "file", "the same file as row 2")


def test_an_image_with_nan_pixels_is_excluded_not_stored_black(tmp_path):
    from PIL import Image

    src = clean_pngs(tmp_path)
    pixels = gradient(50, 40).astype(np.float32)
    pixels[3, 4] = np.nan
    Image.fromarray(pixels, mode="F").save(tmp_path / "img/x3.tif")
    src.manifest_csv.write_text(src.manifest_csv.read_text().replace("img/x3.png", "img/x3.tif"))
    bundle, info = build(tmp_path, src)
    assert info["radiographs"] == 3 and info["excluded"] == 1
    assert "1 of 2,000 pixel values are not finite" in info["excluded_files"][0]["reason"]


def test_a_bundle_inside_the_dicom_folder_is_refused(tmp_path):
    """Its own files would be read as inputs on every later run, and excluded as not DICOM."""
    src = clean_dicom(tmp_path, n_patients=2)
    with pytest.raises(IngestError, match="inside the DICOM folder"):
        build_from_real_data(TINY, src.dicom_dir / "bundle", src, Pseudonymiser(SALT))
    assert not (src.dicom_dir / "bundle").exists()


def test_an_input_that_cannot_be_read_is_excluded_not_fatal(tmp_path, monkeypatch):
    """Hashing the inputs for the stage's key read every file first, and one PermissionError ended the ingest."""
    import modelling.stages.ingest as stage

    src = clean_dicom(tmp_path, n_patients=2)
    locked = src.dicom_dir / "p1-1.dcm"
    real = stage.sha256_file

    def sha256_file(path):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(stage, "sha256_file", sha256_file)
    bundle, info = build(tmp_path, src)
    assert info["radiographs"] == 4 and "cohort" in bundle.stages


def test_an_animated_image_is_excluded_not_ingested_as_a_strip(tmp_path):
    from PIL import Image

    src = clean_pngs(tmp_path)
    frames = [Image.fromarray((gradient(50, 40) // 16 + k).astype(np.uint8)).convert("RGB") for k in range(2)]
    frames[0].save(tmp_path / "img/x3.png", save_all=True, append_images=frames[1:])  # an animated PNG
    bundle, info = build(tmp_path, src)
    assert info["radiographs"] == 3 and info["excluded"] == 1
    assert "2 frames" in info["excluded_files"][0]["reason"] and validate_bundle(bundle.root) == []


def test_a_zero_pixel_spacing_is_no_spacing(tmp_path):
    src = clean_dicom(tmp_path)
    ds = pydicom.dcmread(src.dicom_dir / "p0-0.dcm")
    ds.PixelSpacing = [0, 0]
    ds.save_as(src.dicom_dir / "p0-0.dcm")
    assert read_dicom(src.dicom_dir / "p0-0.dcm").spacing_mm is None
    ds.ImagerPixelSpacing = [0.15, 0.15]  # the next tag that gives one is used
    ds.save_as(tmp_path / "imager.dcm")
    assert read_dicom(tmp_path / "imager.dcm").spacing_mm == (0.15, 0.15)
    bundle, info = build(tmp_path, src)  # the bundle's schema refuses a spacing of 0: it was written halfway
    assert info["radiographs"] == 12 and validate_bundle(bundle.root) == []
    assert bundle.read_table("radiographs")["pixel_spacing_mm"].isna().sum() == 1


@pytest.mark.parametrize("edit, row, column, message", [
    (("bnp", "MRN0001,2010-02-10 12:00,999"), 7, "bnp_ng_l", "another result for this patient at the same time (row 2"),
    (("bnp", "MRN0001,2999-02-10 12:00,180"), 7, "collected_at", "outside the years 1678-2261"),
    (("patients", "MRN0001,M,1960-01-01"), 7, "patient_id", "duplicate patient (first in row 2)"),
])
def test_inputs_that_used_to_crash_or_pass_are_problems_at_their_row(tmp_path, edit, row, column, message):
    # A repeated patient crashed the age lookup ("truth value of a Series is ambiguous"); a year the
    # bundle cannot store overflowed; two results at one time let the salt choose the label.
    src = clean_dicom(tmp_path)
    which, line = edit
    path = src.bnp_csv if which == "bnp" else src.patients_csv
    with path.open("a") as handle:
        handle.write(line + "\n")
    (problem,) = _problems(tmp_path, src)
    assert (problem.file, problem.row, problem.column) == (str(path), row, column) and message in problem.message


def test_a_dicom_date_a_bundle_cannot_store_gives_way_to_the_next_date_tag(tmp_path):
    # It had crashed the ingest (OutOfBoundsDatetime) after every check had passed.
    src = clean_dicom(tmp_path, n_patients=2)
    ds = pydicom.dcmread(src.dicom_dir / "p0-0.dcm")
    ds.AcquisitionDate = "16000101"
    ds.save_as(src.dicom_dir / "p0-0.dcm")
    assert read_dicom(src.dicom_dir / "p0-0.dcm").acquired is None
    ds.StudyDate, ds.StudyTime = "20100110", "101500"
    ds.save_as(src.dicom_dir / "p0-0.dcm")
    assert read_dicom(src.dicom_dir / "p0-0.dcm").acquired == pd.Timestamp("2010-01-10 10:15")
    bundle, info = build(tmp_path, src)
    assert info["radiographs"] == 4 and validate_bundle(bundle.root) == []


def test_a_patients_file_may_give_a_birth_date_on_some_rows_and_an_age_on_others(tmp_path):
    src = clean_pngs(tmp_path)
    src.patients_csv.write_text("patient_id,sex,birth_date,age_years\nP0,M,1940-03-04,\nP1,F,,64\n")
    bundle, info = build(tmp_path, src)
    ages = bundle.read_table("radiographs").sort_values("acquired_at")["age_years"].tolist()
    assert ages[0] == pytest.approx(70.0, abs=0.01) and ages[1] == 64.0
    src.patients_csv.write_text("patient_id,sex,birth_date,age_years\nP0,M,1940-03-04,\nP1,F,,\n")
    (tmp_path / "again").mkdir()
    (problem,) = _problems(tmp_path / "again", src)
    assert (problem.row, problem.column) == (2, "birth_date") and "give birth_date or age_years" in problem.message


def test_the_ingest_records_its_config_for_the_commands_that_follow(tmp_path):
    # Without it, `gvr train --bundle` after `gvr cohort ingest --config tiny` trained the default profile
    # on radiographs written at the tiny size.
    from modelling.cli.app import _study_config

    bundle, _ = build(tmp_path, clean_pngs(tmp_path))
    assert "config" in Bundle(bundle.root).stages
    assert _study_config(None, bundle.root) == TINY


def test_radiographs_are_held_at_the_bundles_size_once_read(tmp_path):
    # Thousands of full-size films (20 MB each as float32) do not fit in memory; each is fitted as read.
    from modelling.cohort.ingest import prepare

    prepared = prepare(TINY, clean_pngs(tmp_path), Pseudonymiser(SALT))
    assert {it.pixels.shape for it in prepared.images} == {(TINY.image_size, TINY.image_size)}
    assert {it.shape for it in prepared.images} == {(50, 40)}


def test_validate_takes_a_patients_file_with_ages_for_the_input_format(tmp_path):
    from modelling.cohort.ingest import guess_input_format

    src = clean_pngs(tmp_path)  # patient_id, sex, age_years: the bundle table's columns, an input's values
    assert guess_input_format(src.patients_csv) == "patients_input"


@pytest.mark.parametrize("name, header, column", [
    ("images.csv", "fle,patient_id,acquired_at,view", "file"),
    ("masks.csv", "image,feature,msk", "mask"),
    ("patients.csv", "patient_id,sex,birthdate", "birth_date"),
])
def test_validate_checks_an_input_with_a_typo_in_its_header_as_that_input(tmp_path, name, header, column):
    """The format was guessed from the header too, so a typo in it made `gvr validate` say it could not tell the
    schema, or check a patients file against the bundle's own table."""
    from typer.testing import CliRunner

    from modelling.cli.app import app

    path = tmp_path / name
    path.write_text(f"{header}\nx,y,z,w\n")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1, result.output
    assert f"column '{column}': missing column" in result.output and "cannot tell the schema" not in result.output


def test_a_replaced_image_makes_the_cohort_out_of_date(tmp_path):
    src = clean_pngs(tmp_path)
    bundle, _ = build(tmp_path, src)
    assert build(tmp_path, src)[1] is None  # current
    iio.imwrite(tmp_path / "img/x2.png", (gradient(50, 40) // 8).astype(np.uint8))
    assert build(tmp_path, src)[1] is not None


def test_a_dicom_without_a_uid_gets_the_same_id_however_its_folder_is_named(tmp_path, monkeypatch):
    src = clean_dicom(tmp_path, n_patients=2)
    for path in src.dicom_dir.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        del ds.SOPInstanceUID
        ds.save_as(path)
    ids = []
    monkeypatch.chdir(tmp_path)
    for k, folder in enumerate([src.dicom_dir, Path("dicom"), Path("./dicom/../dicom")]):
        moved = IngestSources(patients_csv=src.patients_csv, bnp_csv=src.bnp_csv, dicom_dir=folder)
        ids.append(sorted(build(tmp_path, moved, name=f"b{k}")[0].read_table("radiographs")["image_id"]))
    assert ids[0] == ids[1] == ids[2]


# ---- a failed ingest leaves the bundle as it was; the phantom never enters a real bundle ----------


def test_a_failed_ingest_leaves_the_earlier_cohort_current(tmp_path):
    src = clean_dicom(tmp_path)
    bundle, _ = build(tmp_path, src)
    before = (bundle.root / "manifest.json").read_bytes()
    with src.bnp_csv.open("a") as handle:
        handle.write("MRN0001,2010-02-10 12:00,0\n")
    with pytest.raises(IngestError):
        build(tmp_path, src)
    assert (bundle.root / "manifest.json").read_bytes() == before
    assert "cohort" in Bundle(bundle.root).stages and validate_bundle(bundle.root) == []


def test_no_stage_writes_the_phantom_into_a_real_bundle(tmp_path):
    bundle, _ = build(tmp_path, clean_dicom(tmp_path))
    patients = (bundle.root / "tables/patients.parquet").read_bytes()
    with pytest.raises(RealDataBundleError, match="holds real data"):
        build_cohort(TINY, bundle.root)
    with pytest.raises(RealDataBundleError, match="gvr train --bundle"):
        build_cohort(TINY, bundle.root, force=True)
    assert (bundle.root / "tables/patients.parquet").read_bytes() == patients
    assert "tables/phantom_truth.parquet" not in Bundle(bundle.root).files


def test_a_bundle_written_before_origins_were_recorded_is_judged_by_its_tables(tmp_path):
    bundle, _ = build(tmp_path, clean_dicom(tmp_path))
    manifest = json.loads((bundle.root / "manifest.json").read_text())
    del manifest["origin"]
    (bundle.root / "manifest.json").write_text(json.dumps(manifest))
    assert Bundle(bundle.root).origin == "real"
    with pytest.raises(RealDataBundleError):
        build_cohort(TINY, bundle.root)


def test_reproduce_on_a_real_bundle_keeps_its_cohort_and_stops_for_human_readers(tmp_path):
    # Ten radiographs whose codes barely differ. When the MLP started near 0, in the tiny profile's 40 epochs it
    # climbed towards their mean log BNP (5.4) and, on a CPU with AVX2 alone, stopped at 10 ng/L for all of them,
    # so no GVR had a start above the threshold. It now starts at that mean (predictors.mlp_bias_at_mean), and the
    # tiny profile as it is gets GVRs to read on every CPU.
    config = TINY
    assert config.predictors.mlp_bias_at_mean
    bundle, _ = build(tmp_path, clean_dicom(tmp_path, n_patients=10))
    patients = (bundle.root / "tables/patients.parquet").read_bytes()
    with pytest.raises(PendingStagesError, match="human readers") as refused:
        reproduce(config, bundle.root)
    # every command to run next, as typed (`gvr readers unblind` without --bundle was refused when followed)
    assert f"gvr readers unblind packet/ packet/responses/*.csv --key key.csv --bundle {bundle.root}" in str(
        refused.value) and "gvr readers serve packet/ --reader A --round 1" in str(refused.value)
    after = Bundle(bundle.root)
    assert (bundle.root / "tables/patients.parquet").read_bytes() == patients
    assert {"train", "explain", "baselines"} <= set(after.stages) and after.origin == "real"
    assert json.loads(after.verify_file("train/summary.json").read_text())["disease_kept"] is None  # no truth
    assert "tables/phantom_truth.parquet" not in after.files
    # realism needs no truth: the decoder's samples are scored against the real radiographs it learned from
    realism = json.loads(after.verify_file("image_gvr/cnn/fidelity.json").read_text())["realism"]
    assert "decoder samples (two-stage sampler)" in realism["sets"] and realism["reference_n"]["decoder training"] > 0
    # then one human reader's answers (opacity never ticked): the analysis and the whole manuscript follow,
    # with what needs the phantom's masks or truth said to be absent rather than failing the render
    gvrs = after.read_table("gvr_index").query("kind == 'gvr'")
    patient = after.read_table("radiographs").set_index("image_id")["patient_id"]
    answers = pd.DataFrame([
        {"reader": "A", "round": 1, "gvr_id": g.gvr_id, "regime": g.regime, "patient_id": patient[g.image_id],
         "feature": feature, "present": present, "simulated": False}
        for k, g in enumerate(gvrs.itertuples())
        for feature, present in (("cardiomegaly", k % 2 == 0), ("pleural_effusion", k % 3 == 0),
                                 ("airspace_opacity", False), ("no_chf_features", k % 2 == 1 and k % 3 != 0))])
    assert len(gvrs) >= 2
    with after.stage("readers-human", config={"answers": 1}, seed=None) as stage:
        stage.write_table("reader_assessments", answers)
    reproduce(config, bundle.root)
    done = Bundle(bundle.root)
    assert {"analyse", "report"} <= set(done.stages)
    pages = {p.name: p.read_text() for p in (bundle.root / "report").glob("*.html")}
    assert set(pages) == {"index.html", "tables_figures.html", "beyond.html", "fidelity.html"}
    assert "holds real data" in pages["beyond.html"] and "no ground truth" in pages["fidelity.html"]
    for name, page in pages.items():  # what needs the truth is not drawn, and no reference points at nothing
        assert not re.search(r"@(tbl|fig)-", re.sub(r"<(style|script)[^>]*>.*?</\1>", "", page, flags=re.S)), name
    assert "1 reader (A) in 1 reading." in pages["index.html"] and "simulated reader" not in pages["index.html"]
    assert "holding real radiographs and BNP results" in pages["index.html"]  # it had said "a phantom cohort"
    assert "Against the paper" in pages["index.html"] or "none can be held against the paper" in pages["index.html"]
    from typer.testing import CliRunner

    from modelling.cli import app

    simulated = CliRunner().invoke(app, ["readers", "simulate", str(bundle.root)])  # it had failed on a kappa
    assert simulated.exit_code == 2 and "simulated readers need the phantom's masks" in simulated.output
    # answers about GVRs the bundle no longer holds (as after a cohort ingested again): reproduce stops for readers
    with done.stage("readers-human", config={"answers": 2}, seed=None) as stage:
        stage.write_table("reader_assessments", answers.assign(gvr_id=answers["gvr_id"] + "-old"))
    with pytest.raises(PendingStagesError, match="are not in tables/gvr_index.*must read the GVRs the bundle holds"):
        reproduce(TINY, bundle.root)


def test_train_command_refuses_to_synthesise_into_a_failed_real_bundle(tmp_path, clean_env):
    """The issue's path: ingest, then a failed re-ingest, then `gvr train`: refused, naming the bundle."""
    bundle, _ = build(tmp_path, clean_dicom(tmp_path))
    manifest = json.loads((bundle.root / "manifest.json").read_text())
    del manifest["stages"]["cohort"]  # as an older version's failed ingest left it
    (bundle.root / "manifest.json").write_text(json.dumps(manifest))
    exe = str(Path(sys.executable).with_name("gvr"))
    run = subprocess.run([exe, "train", "--config", "tiny", "--bundle", str(bundle.root)], capture_output=True,
                         text=True, timeout=300, env=clean_env)
    # refused before any work: 2, as the README says (it was 1, the status of work that failed)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert f"error: {bundle.root} holds real data" in run.stderr
    assert "tables/phantom_truth.parquet" not in Bundle(bundle.root).files


def test_no_test_patient_image_trains_the_generative_model(tmp_path):
    """Real data mix labelled and unlabelled radiographs per patient; a test patient's unlabelled ones stay out."""
    import pandas as pd

    from modelling.cohort.pairing import generative_training_mask

    splits = pd.DataFrame({"image_id": [f"i{k}" for k in range(6)],
                           "patient_id": ["a", "a", "b", "b", "c", "c"],
                           "set": ["train", "unlabelled", "test", "unlabelled", "unlabelled", "unlabelled"]})
    assert generative_training_mask(splits).tolist() == [False, True, False, False, True, True]
    src = clean_dicom(tmp_path, n_patients=10)
    for i in range(10):  # a third radiograph per patient, two years after its BNP: unlabelled
        make_dicom(src.dicom_dir / f"late{i}.dcm", patient=f"MRN{i:04d}", uid=f"1.2.9.{i}", when=("20150101", "090000"))
    bundle, _ = build(tmp_path, src)
    from modelling.stages.train import build_training

    build_training(TINY, bundle.root)
    splits = bundle.read_table("splits")
    test_patients = set(splits.loc[splits["set"] == "test", "patient_id"])
    left_out = int(((splits["set"] == "unlabelled") & splits["patient_id"].isin(test_patients)).sum())
    assert left_out > 0
    summary = json.loads(bundle.verify_file("train/summary.json").read_text())["generative_training"]
    assert summary == {"radiographs": int((splits["set"] == "unlabelled").sum()) - left_out,
                       "unlabelled_of_test_patients_left_out": left_out}


# ---- the input formats, validated by the same command -------------------------------------------------


def test_validate_knows_the_input_formats_and_agrees_with_the_ingest(tmp_path):
    from typer.testing import CliRunner

    from modelling.cli import app

    src = clean_pngs(tmp_path)
    src.patients_csv.write_text("patient_id,sex,birth_date\nP0,M,1940-01-01\nP1,F,12/25/1950\n")
    runner = CliRunner()
    for path in (src.patients_csv, src.bnp_csv, src.manifest_csv):
        out = runner.invoke(app, ["validate", str(path)])
        if path == src.patients_csv:
            assert out.exit_code == 1 and "row 2 (line 3), column 'birth_date'" in out.output
            assert runner.invoke(app, ["validate", str(path), "--month-first"]).exit_code == 0
        else:
            assert out.exit_code == 0 and "is valid" in out.output, out.output
    bnp = runner.invoke(app, ["validate", str(src.bnp_csv), "--schema", "bnp_input"])
    assert bnp.exit_code == 0 and "bnp input" in bnp.output
    bundle_schema = runner.invoke(app, ["validate", str(src.bnp_csv), "--schema", "bnp_results"])
    assert bundle_schema.exit_code == 1 and "result_id" in bundle_schema.output  # the bundle's table, on request
    with src.manifest_csv.open("a") as handle:
        handle.write("img/gone.png,P1,2015-03-04 10:00,PA\nimg/x0.png,P0,2016-03-04 10:00,PA\n")
    bad = runner.invoke(app, ["validate", str(src.manifest_csv)])
    assert bad.exit_code == 1
    assert "row 5 (line 6), column 'file': no such file" in bad.output
    assert "row 6 (line 7), column 'file': duplicate of row 1" in bad.output
    listed = runner.invoke(app, ["schema", "list"]).output
    assert "patients_input" in listed and "images_manifest" in listed


def test_pydicoms_own_log_goes_into_the_reason_not_onto_the_terminal(tmp_path, caplog):
    """A file cut inside its header makes pydicom log (and warn); the reason says it, nothing else does."""
    import logging
    import warnings

    make_dicom(tmp_path / "a.dcm")
    good = (tmp_path / "a.dcm").read_bytes()
    for cut in range(100, len(good), 3):
        (tmp_path / "t.dcm").write_bytes(good[:cut])
        caplog.clear()
        with caplog.at_level(logging.DEBUG), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                read_dicom(tmp_path / "t.dcm")
            except ValueError as exc:
                if "pydicom: " in str(exc):
                    assert not caplog.records and not caught, (caplog.records, caught)
                    return
    pytest.fail("no cut of the file made pydicom log anything")


def test_every_truncation_of_a_dicom_file_reads_or_is_excluded_with_a_reason(tmp_path):
    """A damaged file is an exclusion with its reason, never a crash of the ingest."""
    make_dicom(tmp_path / "a.dcm")
    good = (tmp_path / "a.dcm").read_bytes()
    outcomes = set()
    for cut in range(0, len(good), 5):
        (tmp_path / "t.dcm").write_bytes(good[:cut])
        try:
            read_dicom(tmp_path / "t.dcm")
            outcomes.add("read")
        except ValueError as exc:
            assert str(exc), cut
            outcomes.add(str(exc).split(" (")[0].split(";")[0])
    assert "not a readable DICOM file" in outcomes and "pixel data cannot be decoded" in outcomes


def test_reproduce_without_config_uses_the_bundles_own_and_refuses_another_image_size(tmp_path):
    """`gvr reproduce --bundle R` given no --config takes R's config.yaml (it had taken the default profile,
    overwritten config.yaml and failed inside training on 32 px radiographs); a config of another image size
    is refused before anything is written."""
    from typer.testing import CliRunner

    from modelling.cli import app

    bundle, _ = build(tmp_path, clean_dicom(tmp_path, n_patients=10))
    runner = CliRunner()
    config_before = (bundle.root / "config.yaml").read_bytes()
    manifest_before = (bundle.root / "manifest.json").read_bytes()
    other = runner.invoke(app, ["reproduce", "--config", "default", "--bundle", str(bundle.root)])
    assert other.exit_code == 2, other.output
    assert "ingested at 32 px, and this config says 64 px" in other.output
    assert (bundle.root / "config.yaml").read_bytes() == config_before
    assert (bundle.root / "manifest.json").read_bytes() == manifest_before
    own = runner.invoke(app, ["reproduce", "--bundle", str(bundle.root)])
    assert own.exit_code == 3 and "human readers" in own.output, own.output
    assert (bundle.root / "config.yaml").read_bytes() == config_before
    assert "train" in Bundle(bundle.root).stages
    # `gvr train` with that config is refused the same way, and the finished training stays as it was (it had
    # been left incomplete, and validate said to train again)
    manifest_trained = (bundle.root / "manifest.json").read_bytes()
    train = runner.invoke(app, ["train", "--config", "default", str(bundle.root)])
    assert train.exit_code == 2 and "ingested at 32 px, and this config says 64 px" in train.output, train.output
    assert (bundle.root / "manifest.json").read_bytes() == manifest_trained
    assert validate_bundle(bundle.root) == []


def test_train_on_a_bundle_that_is_not_there_needs_a_config_to_start_one(tmp_path):
    from typer.testing import CliRunner

    from modelling.cli import app

    typo = tmp_path / "nothere"
    refused = CliRunner().invoke(app, ["train", "--bundle", str(typo)])
    assert refused.exit_code == 2 and f"no bundle at {typo}" in refused.output
    assert not typo.exists()


def test_a_cohort_the_decoder_cannot_train_on_is_said_at_the_ingest(tmp_path, caplog):
    """Every radiograph paired with a BNP: no unlabelled one for the decoder. The ingest took it without a word
    and `gvr train` refused it afterwards."""
    src = clean_pngs(tmp_path)
    (tmp_path / "bnp.csv").write_text("patient_id,collected_at,bnp_ng_l\n" + "".join(
        f"P{i % 2},201{i}-03-04 12:00,{100 + 50 * i}\n" for i in range(4)))
    with caplog.at_level("WARNING"):
        build(tmp_path, src)
    said = [r.getMessage() for r in caplog.records if "no radiograph for the decoder" in r.getMessage()]
    assert len(said) == 1 and "this cohort has none; `gvr train` will refuse it" in said[0]
    caplog.clear()
    with caplog.at_level("WARNING"):
        (tmp_path / "other").mkdir()
        build(tmp_path, clean_pngs(tmp_path / "other"), name="bundle2")  # two unpaired films: no word
    assert not [r for r in caplog.records if "no radiograph for the decoder" in r.getMessage()]
