"""How the ingest reads what hospital exports put in a DICOM header: dates and times as written by ACR-NEMA and by
DT attributes, a date without a time, windows and rescales that cannot be used, files without a header, strips,
a missing PatientID. Each case was a file a review found silently mis-dated, wrongly excluded or kept."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pydicom
import pytest

from modelling.cohort.dicom_header import acquisition_time, parse_da, parse_dt, parse_tm
from modelling.cohort.ingest import Pseudonymiser, image_key_table, read_dicom, shape_reason
from tests.modelling.cohort.test_ingest import SALT, _saved, gradient, make_dicom


def _times(**attributes) -> tuple[pd.Timestamp | None, list[str]]:
    import warnings

    ds = pydicom.Dataset()
    with warnings.catch_warnings():  # pydicom warns of ACR-NEMA values as it is given them; exports hold them
        warnings.filterwarnings("ignore", "Invalid value for VR")
        for key, value in attributes.items():
            setattr(ds, key, value)
    return acquisition_time(ds, lambda stamp: stamp < pd.Timestamp("2030-01-01"))


def test_an_acquisition_date_without_its_time_takes_the_same_days_time_from_another_attribute():
    # it was read as midnight: 15.5 hours off, enough to pair the film with the day before's BNP
    stamp, notes = _times(AcquisitionDate="20120307", ContentDate="20120307", ContentTime="153000",
                          StudyDate="20120307", StudyTime="080000")
    assert stamp == pd.Timestamp("2012-03-07 15:30") and notes == [
        "AcquisitionDate has no time: the ContentTime of the same day taken"]
    stamp, notes = _times(AcquisitionDate="20120307", StudyDate="20120306", StudyTime="230000")
    assert stamp == pd.Timestamp("2012-03-07 00:00")  # another day's time is not this day's
    assert notes == ["AcquisitionDate 2012-03-07 has no time anywhere in the header: 00:00 taken"]


def test_acr_nema_dates_and_times_and_the_dt_attribute_are_read():
    assert _times(AcquisitionDate="2012.03.10", AcquisitionTime="101500", StudyDate="20120101",
                  StudyTime="080000") == (pd.Timestamp("2012-03-10 10:15"), [])
    assert _times(StudyDate="20120309", StudyTime="10:15:00") == (pd.Timestamp("2012-03-09 10:15"), [])
    # the zone offset says which zone the local clock time is in; every other time of a cohort is local
    assert _times(AcquisitionDateTime="20120308101500.000000+0100") == (pd.Timestamp("2012-03-08 10:15"), [])
    assert parse_da("20120230") is None and parse_tm("246000") is None and parse_dt("20120308 1015") is None


def test_an_unreadable_or_future_date_is_passed_over_with_a_note():
    stamp, notes = _times(AcquisitionDate="20121310", AcquisitionTime="101500", StudyDate="20120101",
                          StudyTime="080000")
    assert stamp == pd.Timestamp("2012-01-01 08:00")
    assert notes == ["AcquisitionDate '20121310' is not a DICOM date: passed over"]
    stamp, notes = _times(AcquisitionDate="20990101", AcquisitionTime="101500", ContentDate="20120101",
                          ContentTime="080000")
    assert stamp == pd.Timestamp("2012-01-01 08:00")
    assert notes == ["AcquisitionDate 2099-01-01 10:15 is out of range or in the future: passed over"]
    assert _times(AcquisitionDate="garbage") == (None, ["AcquisitionDate 'garbage' is not a DICOM date: passed over"])


def test_a_window_or_rescale_that_cannot_be_used_leaves_the_full_range_with_a_note(tmp_path):
    plain = read_dicom(make_dicom(tmp_path / "plain.dcm"))
    cases = {  # each was excluded: "The (0028,1051) Window Width must be ...", a TypeError, "the image is blank"
        "width0": dict(window=(2000, 0)),
        "outside": dict(window=(99999, 10)),
    }
    for name, attributes in cases.items():
        item = read_dicom(_saved(tmp_path / f"{name}.dcm", **attributes))
        np.testing.assert_allclose(item.pixels, plain.pixels, atol=1e-6)
        assert len(item.notes) == 1 and "display window" in item.notes[0] and "the full range used" in item.notes[0]
    path = make_dicom(tmp_path / "rescale.dcm")
    ds = pydicom.dcmread(path)
    ds.add_new(0x00281052, "DS", "")
    ds.add_new(0x00281053, "DS", "")
    ds.save_as(path)
    item = read_dicom(path)
    np.testing.assert_allclose(item.pixels, plain.pixels, atol=1e-6)
    assert item.notes and "the stored values used" in item.notes[0]
    assert plain.notes == ()


def test_a_dicom_file_without_its_header_is_read_and_junk_is_not_a_dicom_file(tmp_path):
    from pydicom.filebase import DicomFileLike
    from pydicom.filewriter import write_dataset

    full = pydicom.dcmread(make_dicom(tmp_path / "full.dcm"))
    buffer = io.BytesIO()
    out = DicomFileLike(buffer)
    out.is_little_endian, out.is_implicit_VR = True, True
    write_dataset(out, full)
    (tmp_path / "raw").write_bytes(buffer.getvalue())
    item = read_dicom(tmp_path / "raw")
    np.testing.assert_array_equal(item.pixels, read_dicom(tmp_path / "full.dcm").pixels)
    assert item.notes == ("read without its DICOM file header (preamble and meta information)",)
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(range(200)))
    with pytest.raises(ValueError, match="^not a DICOM file$"):
        read_dicom(tmp_path / ".DS_Store")
    key = image_key_table(tmp_path, None, Pseudonymiser(SALT.encode() if isinstance(SALT, str) else SALT))
    assert sorted(key["file"]) == ["full.dcm", "raw"]


def test_several_frames_are_said_as_frames(tmp_path):
    path = make_dicom(tmp_path / "cine.dcm", pixels=np.concatenate([gradient()] * 3))
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames, ds.Rows = 3, ds.Rows // 3
    ds.save_as(path)
    with pytest.raises(ValueError, match=r"^3 frames \(NumberOfFrames\); one still radiograph per file is expected$"):
        read_dicom(path)


def test_a_strip_is_not_a_radiograph():
    # the size in brackets, so that strips of every size are counted as one reason
    assert shape_reason((1, 300)) == "not the shape of a chest radiograph (1 x 300 px: one side more than 3 times the other)"
    assert shape_reason((430, 350)) is None and shape_reason((100, 301)) is not None


def test_a_radiograph_is_counted_once_per_kind_of_note():
    """Two dates passed over in one file read "2 of 1 radiographs", the file named twice."""
    from modelling.cohort.ingest import Loaded, image_notes

    item = Loaded(source="/x/a.dcm", patient_key="p", image_key="u", acquired=pd.Timestamp("2012-01-01"), view="PA",
                  pixels=np.zeros((4, 4)), spacing_mm=None, shape=(64, 64),
                  notes=("AcquisitionDate 2099-01-01 10:15 is out of range or in the future: passed over",
                         "ContentDate 2098-01-01 10:15 is out of range or in the future: passed over"))
    notes = image_notes([item], 32)
    assert len(notes) == 1 and notes[0].startswith("1 of 1 radiographs: a date unreadable")
    assert notes[0].count("/x/a.dcm") == 1
