"""Real data in: DICOM and PNG radiographs, BNP results and patients, de-identified and paired."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from typer.testing import CliRunner

from data_schema import validate_bundle
from modelling.cli import app
from modelling.cohort.ingest import (
    IngestError,
    INPUT_COLUMNS,
    IngestSources,
    Pseudonymiser,
    fit_square,
    input_formats_fitting,
    parse_timestamp,
    read_dicom,
)
from modelling.config import load_config
from modelling.stages.ingest import build_from_real_data

SALT = b"0123456789abcdef-test-salt"
IDENTIFYING = {
    "PatientName": "Doe^Jane",
    "PatientBirthDate": "19400101",
    "PatientAddress": "1 Secret Street",
    "AccessionNumber": "ACC7654321",
    "InstitutionName": "Saint Example Hospital",
    "ReferringPhysicianName": "Who^Doctor",
    "OtherPatientIDs": "OTHER999",
    "StudyID": "STUDY4242",
}


def gradient(rows=40, cols=40):
    return (np.add.outer(np.arange(rows), np.arange(cols)) * 40).astype(np.uint16)


def make_dicom(path, *, patient="MRN0001", uid="1.2.3.4.1", view="PA", when=("20120304", "101500"),
               pixels=None, photometric="MONOCHROME2", window=None, pixel_data=True):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.SOPInstanceUID = uid
    ds.PatientID = patient
    for key, value in IDENTIFYING.items():
        setattr(ds, key, value)
    ds.Modality = "DX"
    ds.ViewPosition = view
    ds.AcquisitionDate, ds.AcquisitionTime = when
    ds.PixelSpacing = [0.2, 0.2]
    if pixel_data:
        pixels = gradient() if pixels is None else pixels
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = pixels.astype(np.uint16).tobytes()
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def cohort_files(tmp_path):
    d = tmp_path / "dicom"
    d.mkdir()
    make_dicom(d / "a1.dcm", patient="MRN0001", uid="1.2.3.4.1", when=("20120304", "101500"))
    make_dicom(d / "a2.dcm", patient="MRN0001", uid="1.2.3.4.2", when=("20130101", "080000"), view="AP")
    make_dicom(d / "b1.dcm", patient="MRN0002", uid="1.2.3.4.3", when=("20140505", "120000"))
    make_dicom(d / "c1.dcm", patient="MRN0003", uid="1.2.3.4.4", when=("20150606", "120000"))
    make_dicom(d / "c-lateral.dcm", patient="MRN0003", uid="1.2.3.4.5", view="LL")
    make_dicom(d / "no-pixels.dcm", patient="MRN0003", uid="1.2.3.4.6", pixel_data=False)
    good = (d / "b1.dcm").read_bytes()
    (d / "truncated.dcm").write_bytes(good[: len(good) // 3])
    (d / "notes.txt").write_text("not a dicom file")
    (tmp_path / "patients.csv").write_text(
        "patient_id,sex,birth_date\nMRN0001,F,1940-01-01\nMRN0002,M,1950-06-15\nMRN0003,F,1930-02-02\n")
    (tmp_path / "bnp.csv").write_text(
        "patient_id,collected_at,bnp_ng_l\n"
        "MRN0001,2012-03-05 09:00,450\n"          # 22.75 h after a1: paired
        "MRN0002,20140507 010000,80\n"            # DICOM format, 37 h after b1: not paired
        "MRN0003,06/06/2015 20:00,1200\n"         # day-first slashes, 8 h after c1: paired
    )
    return tmp_path, IngestSources(patients_csv=tmp_path / "patients.csv", bnp_csv=tmp_path / "bnp.csv", dicom_dir=d)


def build(tmp_path, src, salt=SALT, name="bundle"):
    return build_from_real_data(load_config("tiny"), tmp_path / name, src, Pseudonymiser(salt))


def manifest_sources(tmp_path, rows, *, patients=("P1,M,70",), bnp=("P1,2012-03-04 12:00,230",), **extra):
    """A PNG cohort's manifest, patients and BNP CSVs in `tmp_path` (their rows under each header), and its
    sources (`extra`: more IngestSources fields)."""
    for name, header, lines in (("manifest", "file,patient_id,acquired_at,view", rows),
                                ("patients", "patient_id,sex,age_years", patients),
                                ("bnp", "patient_id,collected_at,bnp_ng_l", bnp)):
        (tmp_path / f"{name}.csv").write_text("".join(f"{line}\n" for line in (header, *lines)))
    return IngestSources(patients_csv=tmp_path / "patients.csv", bnp_csv=tmp_path / "bnp.csv",
                         manifest_csv=tmp_path / "manifest.csv", **extra)


def test_dicom_folder_is_ingested_paired_and_valid(cohort_files):
    tmp_path, src = cohort_files
    bundle, info = build(tmp_path, src)
    assert validate_bundle(bundle.root) == []
    assert info["radiographs"] == 4 and info["excluded"] == 4
    reasons = {item["file"].rsplit("/", 1)[-1]: item["reason"] for item in info["excluded_files"]}
    assert "not a frontal view" in reasons["c-lateral.dcm"]
    assert reasons["no-pixels.dcm"] == "DICOM file without pixel data"
    assert "truncated.dcm" in reasons and "notes.txt" in reasons
    exclusions = pd.read_csv(bundle.verify_file("cohort/exclusions.csv"))
    assert len(exclusions) == 4 and list(exclusions.columns) == ["file_sha256", "reason"]
    pairing = bundle.read_table("pairing")
    assert sorted(pairing["bnp_ng_l"]) == [450.0, 1200.0]
    assert sorted(pairing["hours_apart"]) == [8.0, 22.75]
    radiographs = bundle.read_table("radiographs")
    assert sorted(radiographs["projection"]) == ["AP", "PA", "PA", "PA"]
    ages = radiographs.sort_values("acquired_at")["age_years"].tolist()
    assert ages[0] == pytest.approx((pd.Timestamp("2012-03-04 10:15") - pd.Timestamp("1940-01-01")).days / 365.25, abs=0.01)
    images = bundle.read_array("images/radiographs-00000.npy")
    assert images.shape == (4, 32, 32) and images.dtype == np.uint8
    splits = bundle.read_table("splits").merge(radiographs[["image_id", "acquired_at"]], on="image_id")
    labelled = splits.sort_values("acquired_at")["set"].ne("unlabelled").tolist()
    assert labelled == [True, False, False, True]  # a1 and c1 paired; a2 and b1 (37 h) not
    np.testing.assert_allclose(radiographs["pixel_spacing_mm"], 0.2 * 40 / 32)  # 40 px of 0.2 mm into 32
    assert bundle.read_image("cohort/contact_sheet.png").shape[2] == 3
    assert info["sets"]["train"]["patients"] + info["sets"]["test"]["patients"] == 2


def test_identifying_attributes_never_reach_the_bundle(cohort_files):
    tmp_path, src = cohort_files
    bundle, _ = build(tmp_path, src)
    secrets = list(IDENTIFYING.values()) + ["MRN0001", "MRN0002", "MRN0003", "1.2.3.4.1", "1940-01-01", "1940"]
    for path in bundle.root.rglob("*"):
        for secret in secrets:
            assert secret not in str(path.relative_to(bundle.root))
        if path.is_file() and path.suffix in (".json", ".csv", ".yaml"):
            text = path.read_text()
            for secret in secrets[:-1]:
                assert secret not in text, (secret, path)
    for name in ("patients", "radiographs", "bnp_results", "pairing", "splits"):
        table = bundle.read_table(name)
        cells = set(table.astype(str).to_numpy().ravel())
        for secret in secrets[:-1]:
            assert not any(secret in c for c in cells), (secret, name)
    patients = bundle.read_table("patients")
    assert set(patients.columns) == {"patient_id", "sex", "age_years"}


def test_pseudonyms_are_stable_for_a_salt_and_change_with_it(cohort_files):
    tmp_path, src = cohort_files
    a, _ = build(tmp_path, src, name="a")
    b, _ = build(tmp_path, src, name="b")
    c, _ = build(tmp_path, src, salt=b"another-secret-salt-0000", name="c")
    ids = lambda bundle: sorted(bundle.read_table("patients")["patient_id"])  # noqa: E731
    assert ids(a) == ids(b) and set(ids(a)).isdisjoint(ids(c))
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Pseudonymiser(b"short")


def test_monochrome1_is_inverted_so_bright_is_dense(tmp_path):
    m2 = read_dicom(make_dicom(tmp_path / "m2.dcm"))
    m1 = read_dicom(make_dicom(tmp_path / "m1.dcm", photometric="MONOCHROME1"))
    np.testing.assert_allclose(m1.pixels, 1.0 - m2.pixels, atol=1e-6)
    assert m2.pixels[0, 0] < m2.pixels[-1, -1]
    assert m2.spacing_mm == (0.2, 0.2)


def test_voi_window_is_applied(tmp_path):
    plain = read_dicom(make_dicom(tmp_path / "plain.dcm"))
    windowed = read_dicom(make_dicom(tmp_path / "win.dcm", window=(1600, 400)))
    # outside the window the pixels saturate: many more pixels at 0 or 1
    saturated = lambda p: np.mean((p <= 1e-6) | (p >= 1 - 1e-6))  # noqa: E731
    assert saturated(windowed.pixels) > 0.5 > saturated(plain.pixels)


def test_resizing_keeps_the_aspect_ratio_and_pads_with_black():
    image = np.ones((100, 50), np.float32)
    out = fit_square(image, 32)
    assert out.shape == (32, 32)
    assert out[:, :8].max() == 0 and out[:, -8:].max() == 0
    np.testing.assert_allclose(out[:, 8:24], 1.0, atol=1e-6)


@pytest.mark.parametrize("text, expected", [
    ("2012-03-04 05:06", "2012-03-04 05:06:00"),
    ("2012-03-04T05:06:07", "2012-03-04 05:06:07"),
    ("20120304050607", "2012-03-04 05:06:07"),
    ("20120304 050607", "2012-03-04 05:06:07"),
    ("04/03/2012 05:06", "2012-03-04 05:06:00"),
    ("04/03/2012", "2012-03-04 00:00:00"),
])
def test_mixed_timestamp_formats(text, expected):
    assert parse_timestamp(text) == pd.Timestamp(expected)


@pytest.mark.parametrize("text", ["yesterday", "2012-13-04", "31/02/2012", "2012-03-04T05:06:07+02:00", ""])
def test_unparseable_timestamps(text):
    assert parse_timestamp(text) is None


def test_month_first_slashes():
    assert parse_timestamp("04/03/2012", dayfirst=False) == pd.Timestamp("2012-04-03")


def assert_nothing_written(root):
    assert not (root / "tables").exists() and not (root / "images").exists()


@pytest.mark.parametrize("row, message", [
    ("MRN0999,2012-03-05 09:00,450", "BNP result for a patient not in the patients file"),
    ("MRN0001,2012-03-05 09:00,0", "BNP must be a positive number"),
    ("MRN0001,2012-03-05 09:00,high", "BNP must be a positive number"),
    ("MRN0001,2012-03-05 09:00,>>450", "BNP must be a positive number"),  # one sign, as labs report a limit
    ("MRN0001,next week,450", "not a timestamp"),
    ("MRN0001,2099-03-05 09:00,450", "in the future (a typo?)"),  # was accepted without a word
])
def test_bad_bnp_rows_are_refused_with_file_row_and_column(cohort_files, row, message):
    tmp_path, src = cohort_files
    with (tmp_path / "bnp.csv").open("a") as handle:
        handle.write(row + "\n")
    with pytest.raises(IngestError) as info:
        build(tmp_path, src)
    problem = info.value.problems[0]
    assert len(info.value.problems) == 1
    assert problem.file == str(tmp_path / "bnp.csv") and problem.row == 4 and message in problem.message
    assert problem.column in ("patient_id", "bnp_ng_l", "collected_at")
    assert_nothing_written(tmp_path / "bundle")


def test_a_dicom_date_in_the_future_is_passed_over_for_the_next_one(tmp_path):
    make_dicom(tmp_path / "x.dcm", when=("20990304", "101500"))
    assert read_dicom(tmp_path / "x.dcm").acquired is None  # no other date: excluded for want of one
    make_dicom(tmp_path / "y.dcm", when=("20990304", "101500"))
    ds = pydicom.dcmread(tmp_path / "y.dcm")
    ds.StudyDate, ds.StudyTime = "20120304", "090000"
    ds.save_as(tmp_path / "y.dcm", enforce_file_format=True)
    assert read_dicom(tmp_path / "y.dcm").acquired == pd.Timestamp("2012-03-04 09:00")


def test_missing_column_is_refused(cohort_files):
    tmp_path, src = cohort_files
    (tmp_path / "bnp.csv").write_text("patient_id,bnp_ng_l\nMRN0001,300\n")
    with pytest.raises(IngestError, match="bnp.csv, column 'collected_at': missing column"):
        build(tmp_path, src)


@pytest.mark.parametrize("fmt", sorted(INPUT_COLUMNS))
def test_a_header_fits_the_input_format_whose_columns_it_has(fmt):
    """What ``gvr validate`` suggests for a table of unknown name comes from the columns ingest requires."""
    required, one_of = INPUT_COLUMNS[fmt]
    header = [*required, *one_of[:1]]
    assert input_formats_fitting(header) == [fmt]
    assert fmt not in input_formats_fitting(header[1:])
    if one_of:
        assert fmt not in input_formats_fitting(required)


@pytest.mark.parametrize("header, hint", [
    ("patient_id;collected_at;bnp_ng_l", "the header is one field, 'patient_id;collected_at;bnp_ng_l'"),
    ("patient_id, collected_at, bnp_ng_l", "the header has ' collected_at': names are matched exactly"),
    ("patient_id,collected_at,bnp_ngl", "the header has 'bnp_ngl', spelled close to it"),
    ("patient_id,collected_at,value", "the header has: 'patient_id', 'collected_at', 'value'"),
])
def test_a_missing_column_says_what_the_header_has_instead(tmp_path, header, hint):
    from modelling.cohort.ingest import validate_input

    (tmp_path / "bnp.csv").write_text(header + "\n" + "MRN0001;2015-01-01 10:00;300\n".replace(";", header[10]))
    problems = validate_input(tmp_path / "bnp.csv", "bnp_input")
    assert problems and all("missing column" in p.message for p in problems)
    assert any(hint in p.message for p in problems), [p.message for p in problems]


def test_a_column_named_twice_is_refused_as_written(tmp_path):
    """A second bnp_ng_l column (99999 beside 50) passed validation and ingest, silently ignored."""
    from modelling.cohort.ingest import validate_input

    (tmp_path / "bnp.csv").write_text("patient_id,collected_at,bnp_ng_l,bnp_ng_l\nMRN0001,2015-01-01 10:00,50,99999\n")
    problems = validate_input(tmp_path / "bnp.csv", "bnp_input")
    assert [(p.column, p.message) for p in problems] == [
        ("bnp_ng_l", "the header names this column 2 times (columns 3 and 4): keep one")]


def test_a_date_that_reads_only_the_other_way_round_names_the_option():
    from modelling.cohort.ingest import _timestamp

    said = []
    assert _timestamp("12/25/2012 10:00", "bnp.csv", 1, "collected_at", said, dayfirst=True) is None
    assert said[0].message.endswith("it reads as 2012-12-25 10:00 month first: give --month-first")
    assert _timestamp("25/12/2012 10:00", "bnp.csv", 1, "collected_at", said, dayfirst=False) is None
    assert said[1].message.endswith("day first: leave out --month-first")
    assert _timestamp("25/13/2012", "bnp.csv", 1, "collected_at", said, dayfirst=True) is None
    assert said[2].message.endswith("no time zone)")


def test_dates_whose_order_only_the_option_decides_are_said_aloud(tmp_path, caplog):
    """Slashed dates that read either way (no number above 12) and a column mixing formats warn with the file and
    column; a column that shows its order (a day above 12) does not."""
    from modelling.cohort.ingest import date_order_notes, read_bnp

    ambiguous = date_order_notes(["04/03/2012 10:00", "", "05/06/2013"], dayfirst=True)
    assert ambiguous == ["2 slashed dates (rows 1, 3), none with a day above 12: read day first (DD/MM/YYYY); give "
                         "--month-first if they are MM/DD/YYYY"]
    assert "read month first" in date_order_notes(["04/03/2012"], dayfirst=False)[0]
    assert date_order_notes(["04/03/2012", "25/03/2012"], dayfirst=True) == []
    assert date_order_notes(["03/04/2012", "03/25/2012"], dayfirst=False) == []  # month first, shown by the 25
    assert date_order_notes(["2012-03-04", "20120304"], dayfirst=True) == []  # no slashes: nothing to assume
    mixed = date_order_notes(["2012-03-04 10:00", "25/03/2012 10:00"], dayfirst=True)
    assert mixed == ["mixes 1 slashed date(s) (rows 2) with 1 in other formats (ISO 8601 or DICOM): if they come "
                     "from different systems, check that the slashed ones are day first"]
    csv = tmp_path / "bnp.csv"
    csv.write_text("patient_id,collected_at,bnp_ng_l\nP1,2012-03-04 12:00,50\nP1,04/05/2013 12:00,60\n")
    with caplog.at_level(logging.WARNING):
        table, problems = read_bnp(csv, None, Pseudonymiser(SALT), dayfirst=True)
    assert not problems and len(table) == 2
    assert f"{csv}: column 'collected_at': 1 slashed date (rows 2), none with a day above 12" in caplog.text
    assert f"{csv}: column 'collected_at': mixes 1 slashed date(s)" in caplog.text


def test_small_and_colour_pictures_are_ingested_and_named_in_a_warning(tmp_path, caplog):
    """The tiny profile holds 32 x 32 px: a 16 x 20 picture is enlarged, an RGB one with equal channels is a
    radiograph saved in colour (not named), one with differing channels is named by its manifest row."""
    import imageio.v3 as iio

    grey = (gradient(40, 40) // 16).astype(np.uint8)
    iio.imwrite(tmp_path / "ok.png", grey)
    iio.imwrite(tmp_path / "small.png", grey[:16, :20])
    iio.imwrite(tmp_path / "rgb-grey.png", np.stack([grey] * 3, axis=-1))
    tinted = np.stack([grey, grey // 2, grey], axis=-1)
    iio.imwrite(tmp_path / "tinted.png", tinted)
    src = manifest_sources(tmp_path, ["ok.png,P1,2012-03-04 10:00,PA", "small.png,P1,2013-03-04 10:00,PA",
                                      "rgb-grey.png,P1,2014-03-04 10:00,PA", "tinted.png,P1,2015-03-04 10:00,PA"],
                           bnp=["P1,2012-03-04 12:00,50"])
    with caplog.at_level(logging.WARNING):
        bundle, info = build(tmp_path, src)
    assert len(bundle.read_table("radiographs")) == 4  # kept: a warning, not an exclusion
    manifest = tmp_path / "manifest.csv"
    assert (f"1 of 4 radiographs are smaller than the bundle's 32 x 32 px (the smallest 16 x 20) and are enlarged, "
            f"without the detail a radiograph of that size holds: {manifest} row(s) 2") in caplog.text
    assert f"1 of 4 radiographs are in colour (photographs, or annotated screenshots?) and are read as the mean " \
           f"of their channels: {manifest} row(s) 4" in caplog.text


def test_duplicate_images_are_refused(cohort_files):
    tmp_path, src = cohort_files
    make_dicom(src.dicom_dir / "copy.dcm", patient="MRN0002", uid="1.2.3.4.3", when=("20140505", "120000"))
    with pytest.raises(IngestError, match=r"copy.dcm: the same SOPInstanceUID \(0008,0018\) as .*: one image twice; "
                                          "remove one of the copies"):
        build(tmp_path, src)
    assert_nothing_written(tmp_path / "bundle")


def test_png_manifest_with_a_corrupt_file(tmp_path):
    import imageio.v3 as iio

    (tmp_path / "img").mkdir()
    iio.imwrite(tmp_path / "img/x1.png", (gradient(60, 40) // 16).astype(np.uint8))
    iio.imwrite(tmp_path / "img/x2.png", (gradient(40, 40) // 16).astype(np.uint8))
    (tmp_path / "img/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    src = manifest_sources(tmp_path, ["img/x1.png,P1,2012-03-04 10:00,PA", "img/x2.png,P1,2013-03-04 10:00,AP",
                                      "img/broken.png,P1,2014-03-04 10:00,PA"])
    bundle, info = build(tmp_path, src)
    assert info["radiographs"] == 2 and info["excluded"] == 1
    assert "not a readable image" in info["excluded_files"][0]["reason"]
    ages = sorted(bundle.read_table("radiographs")["age_years"])
    assert ages[0] == 70.0 and ages[1] == pytest.approx(71.0, abs=0.01)
    assert validate_bundle(bundle.root) == []


@pytest.mark.parametrize("row, column, message", [
    ("img/missing.png,P1,2013-03-04 10:00,PA", "file", "no such file (paths are relative to the CSV)"),
    ("img/x2.png,P9,2013-03-04 10:00,PA", "patient_id", "image of a patient not in the patients file"),
])
def test_a_manifest_row_naming_a_missing_file_or_an_unknown_patient_is_an_error_at_that_row(tmp_path, row, column,
                                                                                           message):
    """Both were excluded and the ingest went on (exit 0), though `gvr validate` calls a missing file an
    error and a BNP row of an unknown patient is one: the user listed that row, and it was lost unseen."""
    import imageio.v3 as iio

    (tmp_path / "img").mkdir()
    for name in ("x1.png", "x2.png"):
        iio.imwrite(tmp_path / "img" / name, (gradient(40, 40) // 16).astype(np.uint8))
    src = manifest_sources(tmp_path, ["img/x1.png,P1,2012-03-04 10:00,PA", row])
    with pytest.raises(IngestError) as caught:
        build(tmp_path, src)
    text = str(caught.value)
    assert f"row 2 (line 3), column '{column}'" in text and message in text and "manifest.csv" in text
    assert not (tmp_path / "bundle").exists()  # nothing written


def test_cli_ingest_needs_a_salt_and_reports(cohort_files, monkeypatch):
    tmp_path, src = cohort_files
    args = ["cohort", "ingest", "--config", "tiny", "--out", str(tmp_path / "cli"), "--patients", str(src.patients_csv),
            "--bnp", str(src.bnp_csv), "--dicom", str(src.dicom_dir)]
    monkeypatch.delenv("GVR_SALT", raising=False)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "salt" in result.output
    monkeypatch.setenv("GVR_SALT", SALT.decode())
    (tmp_path / "other-salt").write_bytes(b"another secret salt, 32 bytes long")
    two = CliRunner().invoke(app, args + ["--salt-file", str(tmp_path / "other-salt")])  # it had taken the file's
    assert two.exit_code == 2 and "two different salts" in two.output and not (tmp_path / "cli").exists()
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "ingested 4 radiographs of 3 patients (4 file(s) excluded)" in result.output
    assert "excluded: " in result.output and "c-lateral.dcm" in result.output
    assert "BNP median (IQR)" in result.output
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "is current" in again.output  # its summary, read back, has a null SD
    # without --config, the bundle's own config (tiny): still current, not ingested again at 64 px
    own = CliRunner().invoke(app, [a for a in args if a not in ("--config", "tiny")])
    assert own.exit_code == 0 and "is current" in own.output, (own.exit_code, own.exception, own.output)
    with (src.bnp_csv).open("a") as handle:
        handle.write("MRN0001,2012-03-05 09:00,0\n")
    bad = CliRunner().invoke(app, args + ["--force"])
    assert bad.exit_code == 1 and "row 4 (line 5), column 'bnp_ng_l'" in bad.output


def test_exclusion_reasons_in_the_bundle_never_quote_a_path(tmp_path, caplog):
    import imageio.v3 as iio

    folder = tmp_path / "Smith_John_MRN998877"
    folder.mkdir()
    iio.imwrite(folder / "ok.png", (gradient(40, 40) // 16).astype(np.uint8))
    (folder / "broken.png").write_bytes(b"not a png at all")
    iio.imwrite(folder / "lateral.png", (gradient(40, 40) // 16).astype(np.uint8))
    src = manifest_sources(tmp_path, ["Smith_John_MRN998877/ok.png,P1,2012-03-04 10:00,PA",
                                      "Smith_John_MRN998877/lateral.png,P1,2013-03-04 10:00,LL",
                                      "Smith_John_MRN998877/broken.png,P1,2014-03-04 10:00,PA"],
                           bnp=["P1,2012-03-04 12:00,<5"])
    with caplog.at_level(logging.WARNING):
        bundle, info = build(tmp_path, src)
    assert info["excluded"] == 2 and info["censored_bnp_values"] == 1
    assert "column 'bnp_ng_l', row(s) 1 (e.g. '<5')" in caplog.text  # which row, as every other finding names
    assert any("Smith_John" in item["reason"] or "Smith_John" in item["file"] for item in info["excluded_files"])
    for path in bundle.root.rglob("*"):
        assert "Smith" not in str(path) and "998877" not in str(path)
        if path.is_file() and path.suffix in (".csv", ".json", ".yaml"):
            assert "Smith" not in path.read_text() and "998877" not in path.read_text(), path
    reasons = pd.read_csv(bundle.verify_file("cohort/exclusions.csv"))["reason"].tolist()
    assert any(r.startswith("not a readable image (") for r in reasons)


# ---- segmentations (--masks) -------------------------------------------------------------------------


def _masked_cohort(tmp_path, masks_csv: str, *, mask_shapes=None):
    """Three 40 x 30 PNG radiographs (one lateral) and masks drawn on them; returns the sources."""
    import imageio.v3 as iio

    picture = (gradient(40, 30) // 16).astype(np.uint8)
    for name in ("a.png", "b.png", "lat.png"):
        iio.imwrite(tmp_path / name, picture)
    heart = np.zeros((40, 30), np.uint8)
    heart[20:30, 10:20] = 255
    iio.imwrite(tmp_path / "a-heart.png", heart)
    iio.imwrite(tmp_path / "a-effusion.png", np.zeros((40, 30), np.uint8))  # none: an empty mask
    marker = np.zeros((40, 30), np.uint8)
    marker[0:4, 0:4] = 1  # saved as 0/1: inside is above half of its own maximum
    iio.imwrite(tmp_path / "b-markers.png", marker)
    iio.imwrite(tmp_path / "small.png", heart[:20, :15])
    (tmp_path / "masks.csv").write_text(masks_csv)
    return manifest_sources(tmp_path, ["a.png,P1,2012-03-04 10:00,PA", "b.png,P2,2013-03-04 10:00,PA",
                                       "lat.png,P2,2013-03-04 10:05,LL"], patients=["P1,M,70", "P2,F,60"],
                            bnp=["P1,2012-03-04 12:00,500"], masks_csv=tmp_path / "masks.csv")


GOOD_MASKS = ("image,feature,mask\n"
              "a.png,heart,a-heart.png\na.png,effusion,a-effusion.png\nb.png,opacity,a-effusion.png\n"
              "b.png,markers,b-markers.png\nlat.png,heart,a-heart.png\nb.png,heart,a-heart.png\n")


def test_masks_are_fitted_as_their_radiographs_and_stored_as_bits(tmp_path):
    from modelling.cohort.ingest import fit_square
    from modelling.cohort.phantom import unpack_masks

    src = _masked_cohort(tmp_path, GOOD_MASKS)
    bundle, info = build(tmp_path, src)
    assert validate_bundle(bundle.root) == []
    table = bundle.read_table("radiograph_masks")
    radiographs = bundle.read_table("radiographs")
    assert len(radiographs) == 2 and len(table) == 2  # the lateral view's mask passed over with it
    assert info["masks"] == {"radiographs": 2, "segmented": ["heart", "effusion", "opacity", "markers"],
                             "passed_over": 1}
    assert (table["segmented"] == "heart,effusion,opacity,markers").all()
    # the same geometry as the image: 40 x 30 fitted into 32 x 32, aspect kept, padded
    heart = np.zeros((40, 30), np.float32)
    heart[20:30, 10:20] = 1
    assert table.set_index("image_id").loc[radiographs["image_id"], "mask_index"].tolist() == [0, 1]
    first = table[table["image_id"] == radiographs["image_id"].iloc[0]].iloc[0]
    masks = unpack_masks(bundle.read_array(first["mask_path"])["bits"][int(first["mask_index"])])
    assert np.array_equal(masks["heart"], fit_square(heart, 32) > 0.5) and masks["heart"].sum() > 20
    assert not masks["effusion"].any() and not masks["markers"].any()
    second = table[table["image_id"] == radiographs["image_id"].iloc[1]].iloc[0]
    masks = unpack_masks(bundle.read_array(second["mask_path"])["bits"][int(second["mask_index"])])
    assert masks["markers"].sum() > 0 and np.array_equal(masks["heart"], fit_square(heart, 32) > 0.5)


@pytest.mark.parametrize("rows, row, column, message", [
    ("a.png,lungs,a-heart.png", 7, "feature", "not a mask feature"),
    ("a.png,heart,a-heart.png", 7, "feature", "a second heart mask of a.png (the first in row 1)"),
    ("c.png,device,a-heart.png", 7, "image", "not a radiograph of the inputs"),
    ("b.png,device,missing.png", 7, "mask", "no such file"),
    ("b.png,device,small.png", 7, "mask", "20 x 15 px, its radiograph 40 x 30"),
])
def test_a_bad_mask_row_is_an_error_at_its_row_and_nothing_is_written(tmp_path, rows, row, column, message):
    src = _masked_cohort(tmp_path, GOOD_MASKS + rows + "\n")
    with pytest.raises(IngestError) as err:
        build(tmp_path, src)
    found = [p for p in err.value.problems if str(p.file).endswith("masks.csv")]
    assert [(p.row, p.column) for p in found] == [(row, column)] and message in found[0].message, found
    assert not (tmp_path / "bundle").exists()


@pytest.mark.parametrize("rows, row, column, message", [
    ("b.png,device,red.png", 7, "mask", "a colour image"),
    ("b.png,device,/abs/d.png", 7, "mask", "an absolute path"),
])
def test_a_colour_or_absolute_mask_is_refused_at_its_row(tmp_path, rows, row, column, message):
    """A pure red mask read as the mean of its channels (85 of 255) fell outside itself: an empty mask, no warning."""
    import imageio.v3 as iio

    red = np.zeros((40, 30, 3), np.uint8)
    red[20:30, 10:20, 0] = 255
    iio.imwrite(tmp_path / "red.png", red)
    src = _masked_cohort(tmp_path, GOOD_MASKS + rows + "\n")
    with pytest.raises(IngestError) as err:
        build(tmp_path, src)
    found = [p for p in err.value.problems if str(p.file).endswith("masks.csv")]
    assert [(p.row, p.column) for p in found] == [(row, column)] and message in found[0].message, found


def test_every_radiograph_named_needs_a_heart_mask_that_is_not_empty(tmp_path):
    """Without one, the region response would count the radiograph's whole change as outside the disease masks."""
    import imageio.v3 as iio

    no_heart = GOOD_MASKS.replace("b.png,heart,a-heart.png\n", "")
    with pytest.raises(IngestError) as err:
        build(tmp_path, _masked_cohort(tmp_path, no_heart))
    (problem,) = err.value.problems
    assert (problem.row, problem.column) == (3, "image") and "no heart mask of b.png" in problem.message
    iio.imwrite(tmp_path / "dot.png", np.pad(np.full((1, 1), 255, np.uint8), ((1, 38), (1, 28))))
    thin = GOOD_MASKS.replace("b.png,heart,a-heart.png", "b.png,heart,dot.png")
    with pytest.raises(IngestError) as err:
        build(tmp_path, _masked_cohort(tmp_path, thin))
    (problem,) = err.value.problems
    assert (problem.row, problem.column) == (6, "mask") and "heart mask is empty at the bundle's 32 px" in problem.message
    assert not (tmp_path / "bundle").exists()


def test_masks_must_segment_every_disease_feature(tmp_path):
    src = _masked_cohort(tmp_path, "image,feature,mask\na.png,heart,a-heart.png\n")
    with pytest.raises(IngestError) as err:
        build(tmp_path, src)
    (problem,) = err.value.problems
    assert problem.column == "feature" and "no effusion, opacity mask on any radiograph" in problem.message


def test_a_masks_file_is_checked_on_its_own_by_validate(tmp_path):
    from modelling.cohort.ingest import guess_input_format, validate_input

    _masked_cohort(tmp_path, GOOD_MASKS + "b.png,lungs,missing.png\n")
    path = tmp_path / "masks.csv"
    assert guess_input_format(path) == "masks_input"
    problems = validate_input(path, "masks_input")
    assert [(p.row, p.column) for p in problems] == [(7, "feature")]
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1 and "row 7" in result.output and "not a mask feature" in result.output


def test_a_mask_is_read_by_its_levels_and_an_implausible_one_named(tmp_path, caplog):
    import imageio.v3 as iio

    from modelling.cohort.masks_input import read_mask

    inside = np.zeros((8, 8), bool)
    inside[2:5, 3:6] = True
    for name, pixels in (("01.png", inside.astype(np.uint8)), ("0255.png", inside.astype(np.uint8) * 255),
                         ("16bit.png", inside.astype(np.uint16) * 65535)):
        iio.imwrite(tmp_path / name, pixels)
        assert np.array_equal(read_mask(tmp_path / name) > 0, inside), name
    noisy = np.where(inside, 250, 0).astype(np.uint8) + np.arange(64, dtype=np.uint8).reshape(8, 8) % 4
    iio.imwrite(tmp_path / "noisy.png", noisy)  # many levels: inside above half of full scale, noise outside
    assert np.array_equal(read_mask(tmp_path / "noisy.png") > 0, inside)
    iio.imwrite(tmp_path / "faint.png", (np.arange(64).reshape(8, 8) % 4).astype(np.uint8))
    assert not read_mask(tmp_path / "faint.png").any()
    iio.imwrite(tmp_path / "black.png", np.zeros((8, 8), np.uint8))
    assert not read_mask(tmp_path / "black.png").any()

    # an inverted heart mask and a wire's end thinner than a pixel of the bundle are kept, and named
    src = _masked_cohort(tmp_path, GOOD_MASKS + "a.png,device,wire.png\n")
    iio.imwrite(tmp_path / "a-heart.png", np.where(np.arange(1200).reshape(40, 30) < 40, 0, 255).astype(np.uint8))
    wire = np.zeros((40, 30), np.uint8)
    wire[1, 1] = 255  # one pixel across a pixel boundary of the 0.8-times smaller bundle image: 36 % of one
    iio.imwrite(tmp_path / "wire.png", wire)
    with caplog.at_level(logging.WARNING):
        build(tmp_path, src)
    masks_csv = tmp_path / "masks.csv"
    assert f"{masks_csv}, row 1, column 'mask': the heart mask a-heart.png covers 97 % of its radiograph" in caplog.text
    assert f"{masks_csv}, row 7, column 'mask': the device mask wire.png vanishes at the bundle's 32 px" in caplog.text


def test_masks_of_a_dicom_folder_name_each_file_by_its_path_in_the_folder(cohort_files):
    import imageio.v3 as iio

    tmp_path, src = cohort_files
    heart = np.zeros((40, 40), np.uint8)
    heart[10:30, 12:28] = 255
    iio.imwrite(tmp_path / "heart.png", heart)
    iio.imwrite(tmp_path / "none.png", np.zeros((40, 40), np.uint8))
    (tmp_path / "masks.csv").write_text("image,feature,mask\n"
                                        "b1.dcm,heart,heart.png\nb1.dcm,effusion,none.png\nb1.dcm,opacity,none.png\n"
                                        "c-lateral.dcm,heart,heart.png\n")  # excluded (lateral): passed over
    bundle, info = build(tmp_path, dataclasses.replace(src, masks_csv=tmp_path / "masks.csv"))
    table = bundle.read_table("radiograph_masks")
    assert info["masks"]["radiographs"] == 1 and info["masks"]["passed_over"] == 1
    b1 = Pseudonymiser(SALT)("image", "1.2.3.4.3")  # the file's SOP Instance UID, pseudonymised
    assert list(table["image_id"]) == [b1]
    from modelling.cohort.phantom import unpack_masks

    masks = unpack_masks(bundle.read_array(table["mask_path"].iloc[0])["bits"][int(table["mask_index"].iloc[0])])
    assert masks["heart"].sum() > 0 and not masks["effusion"].any()


def test_the_key_names_each_radiographs_file_and_stays_outside_the_bundle(cohort_files, tmp_path):
    """`gvr cohort key` gives the image_id the ingest gives each input file, to find what a GVR explains."""
    folder, src = cohort_files
    bundle, _ = build(folder, src)
    salt = folder / "salt"
    salt.write_bytes(SALT)
    out = tmp_path / "key.csv"
    result = CliRunner().invoke(app, ["cohort", "key", "--dicom", str(src.dicom_dir), "--salt-file", str(salt),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    key = pd.read_csv(out)
    ingested = bundle.read_table("radiographs")["image_id"]
    assert set(ingested) <= set(key["image_id"])  # every kept radiograph found
    # b1's header is readable in its truncated copy too: both files carry its SOP Instance UID
    assert set(key.loc[key["image_id"] == Pseudonymiser(SALT)("image", "1.2.3.4.3"), "file"]) == {
        "b1.dcm", "truncated.dcm"}
    assert "notes.txt" not in set(key["file"])  # not a DICOM file
    refused = CliRunner().invoke(app, ["cohort", "key", "--dicom", str(src.dicom_dir), "--salt-file", str(salt),
                                       "--out", str(bundle.root / "key.csv")])
    assert refused.exit_code == 2 and "keep it outside" in refused.output
    assert not (bundle.root / "key.csv").exists()
    # the same key again is written again; a key of another salt does not replace the one there (it had, silently)
    written = out.read_bytes()
    again = CliRunner().invoke(app, ["cohort", "key", "--dicom", str(src.dicom_dir), "--salt-file", str(salt),
                                     "--out", str(out)])
    assert again.exit_code == 0 and out.read_bytes() == written
    other = folder / "other-salt"
    other.write_bytes(SALT[::-1])
    replaced = CliRunner().invoke(app, ["cohort", "key", "--dicom", str(src.dicom_dir), "--salt-file", str(other),
                                        "--out", str(out)])
    assert replaced.exit_code == 2 and f"{out} exists and holds another key" in replaced.output
    assert out.read_bytes() == written


def test_the_key_refuses_a_manifest_with_problems_and_an_empty_input(tmp_path, capsys):
    """A key of the wrong file, of a header with a typo or of an empty folder was written, empty, with exit 0: it
    would re-identify nothing, and say so nowhere."""
    salt = tmp_path / "salt"
    salt.write_bytes(SALT)
    (tmp_path / "a.png").write_bytes(b"not read: the key names files, it does not read them")
    manifest_sources(tmp_path, ["a.png,P1,2012-03-04 10:00,PA", "gone.png,P1,2012-03-05 10:00,PA",
                                "./a.png,P1,2012-03-06 10:00,PA"])
    out = tmp_path / "key.csv"

    def key(*args) -> tuple[int, str]:
        from modelling.cli.app import main

        code = main(["cohort", "key", *args, "--salt-file", str(salt), "--out", str(out)])
        return code, capsys.readouterr().err

    code, err = key("--manifest", str(tmp_path / "manifest.csv"))
    assert code == 1, err
    assert "row 2 (line 3), column 'file'" in err and "no such file" in err
    assert "row 3 (line 4), column 'file'" in err and "duplicate of row 1" in err
    code, err = key("--manifest", str(tmp_path / "patients.csv"))  # another input file
    assert code == 1 and "column 'file'" in err and "missing column" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = key("--dicom", str(empty))
    assert code == 1 and "no radiographs found" in err
    assert not out.exists()
    manifest_sources(tmp_path, ["a.png,P1,2012-03-04 10:00,PA"])
    assert key("--manifest", str(tmp_path / "manifest.csv"))[0] == 0
    assert pd.read_csv(out)["file"].tolist() == ["a.png"]


def _saved(path, **attributes):
    make_dicom(path, window=attributes.pop("window", None))
    ds = pydicom.dcmread(path)
    for key, value in attributes.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.save_as(path)
    return path


def test_the_ingest_names_missing_patient_ids_views_strips_and_header_choices(cohort_files, caplog):
    tmp_path, src = cohort_files
    d = src.dicom_dir
    _saved(d / "no-id.dcm", PatientID=None, SOPInstanceUID="1.2.3.9.1")
    _saved(d / "no-view.dcm", ViewPosition=None, SOPInstanceUID="1.2.3.9.2")
    make_dicom(d / "strip.dcm", patient="MRN0002", uid="1.2.3.9.3", pixels=gradient()[:4])
    _saved(d / "no-time.dcm", PatientID="MRN0002", SOPInstanceUID="1.2.3.9.4", AcquisitionTime=None)
    with caplog.at_level("WARNING"):
        build(tmp_path, src)
    excluded = pd.read_csv(tmp_path / "bundle/cohort/exclusions.csv")
    reasons = set(excluded["reason"])
    assert "no PatientID (0010,0020) to find the patient by" in reasons  # was "patient not in the patients file"
    assert "not a frontal view (no ViewPosition); PA and AP are kept" in reasons  # was "ViewPosition 'missing'"
    assert any(r.startswith("not the shape of a chest radiograph (4 x ") for r in reasons)
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "a date without a time anywhere in the header, taken as 00:00" in said and "no-time.dcm" in said
