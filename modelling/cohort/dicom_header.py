"""What a DICOM radiograph's header says that the ingest needs, read the way hospital exports write it:
when the film was taken, how its stored values are shown, and whether the file is DICOM at all. Where the
header is incomplete or wrong and a choice is made, the choice comes back as a note, so that the ingest can
name the files it made it for instead of choosing silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

#: Where the time of a film can be read, nearest the exposure first (PS3.3 C.7.6.1, C.7.3.1, C.7.2.1):
#: a DT attribute, then (date, time) pairs.
TIME_SOURCES: tuple[tuple[str, str | None], ...] = (
    ("AcquisitionDateTime", None),
    ("AcquisitionDate", "AcquisitionTime"),
    ("ContentDate", "ContentTime"),
    ("SeriesDate", "SeriesTime"),
    ("StudyDate", "StudyTime"),
)

# DA is YYYYMMDD; ACR-NEMA 2.0 wrote YYYY.MM.DD, which PS3.5 6.2 asks readers to accept.
_DA = re.compile(r"^(\d{4})\.?(\d{2})\.?(\d{2})$")
# TM is HH[MM[SS[.F{1,6}]]]; ACR-NEMA 2.0 wrote HH:MM:SS.frac.
_TM = re.compile(r"^(\d{2})(?::?(\d{2})(?::?(\d{2})(?:\.(\d{1,6}))?)?)?$")
# DT is YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]][&ZZXX]; the offset says which zone the local time is in.
_DT = re.compile(r"^(\d{8})(\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?([+-]\d{4})?$")


def _text(value) -> str:
    return str(value if value is not None else "").strip()


def parse_da(value) -> datetime | None:
    """A DICOM date (``20120310``, or ACR-NEMA's ``2012.03.10``) as midnight of that day; None otherwise.

    >>> parse_da("20120310"), parse_da("2012.03.10"), parse_da("20121310"), parse_da("")
    (datetime.datetime(2012, 3, 10, 0, 0), datetime.datetime(2012, 3, 10, 0, 0), None, None)
    """
    found = _DA.match(_text(value))
    if not found:
        return None
    try:
        return datetime(*(int(g) for g in found.groups()))
    except ValueError:
        return None


def parse_tm(value) -> tuple[int, int, int, int] | None:
    """A DICOM time as (hour, minute, second, microsecond): ``101500``, ``1015``, ``10``, ``101500.25``, and
    ACR-NEMA's ``10:15:00``; None otherwise.

    >>> parse_tm("101500.25"), parse_tm("10:15:00"), parse_tm("1015"), parse_tm("2561"), parse_tm("")
    ((10, 15, 0, 250000), (10, 15, 0, 0), (10, 15, 0, 0), None, None)
    """
    found = _TM.match(_text(value))
    if not found:
        return None
    hour, minute, second, fraction = found.groups()
    parts = (int(hour), int(minute or 0), min(int(second or 0), 59), int((fraction or "0").ljust(6, "0")))
    return parts if parts[0] < 24 and parts[1] < 60 else None  # a leap second (60) is read as 59


def parse_dt(value) -> tuple[datetime, bool] | None:
    """A DICOM date-time as local clock time, and whether it has a time of day; its zone offset, if any, is
    dropped, since every other time of the cohort (DA and TM, the CSVs) is local clock time too.

    >>> parse_dt("20120308101500.000000+0100")
    (datetime.datetime(2012, 3, 8, 10, 15), True)
    >>> parse_dt("20120308"), parse_dt("2012")
    ((datetime.datetime(2012, 3, 8, 0, 0), False), None)
    """
    found = _DT.match(_text(value))
    if not found:
        return None
    day = parse_da(found.group(1))
    if day is None:
        return None
    if not found.group(2):
        return day, False
    time = parse_tm(found.group(2))
    if time is None:
        return None
    return day.replace(hour=time[0], minute=time[1], second=time[2], microsecond=time[3]), True


def acquisition_time(ds, usable: Callable[[pd.Timestamp], bool]) -> tuple[pd.Timestamp | None, list[str]]:
    """When the film was taken, from the first of :data:`TIME_SOURCES` that gives a `usable` time, and notes on
    what was passed over or assumed on the way (none when the first source present gives a date and time).

    A date without a time of its own takes the time of another source on the same day (an AcquisitionDate
    with only a ContentTime or StudyTime of that day); with none, it is midnight, and the note says so, since
    a radiograph's pairing with a BNP result allows 36 hours and midnight may be most of a day off. A source
    that is present but unreadable, out of range or in the future is passed over for the next, with a note.

    >>> import pydicom
    >>> ds = pydicom.Dataset()
    >>> ds.AcquisitionDate, ds.StudyDate, ds.StudyTime = "20120307", "20120307", "153000"
    >>> acquisition_time(ds, lambda stamp: True)
    (Timestamp('2012-03-07 15:30:00'), ['AcquisitionDate has no time: the StudyTime of the same day taken'])
    """
    found = []  # (source, datetime or None, has_time, note on reading it)
    for date_tag, time_tag in TIME_SOURCES:
        raw = ds.get(date_tag)
        if raw is None or _text(raw) == "":
            continue
        if time_tag is None:
            parsed = parse_dt(raw)
            found.append((date_tag, *(parsed or (None, False)),
                          None if parsed else f"{date_tag} {_text(raw)!r} is not a DICOM date-time: passed over"))
            continue
        day = parse_da(raw)
        if day is None:
            found.append((date_tag, None, False, f"{date_tag} {_text(raw)!r} is not a DICOM date: passed over"))
            continue
        raw_time = _text(ds.get(time_tag))
        time = parse_tm(raw_time) if raw_time else None
        note = f"{time_tag} {raw_time!r} is not a DICOM time" if raw_time and time is None else None
        if time is None:
            found.append((date_tag, day, False, note))
        else:
            found.append((date_tag, day.replace(hour=time[0], minute=time[1], second=time[2], microsecond=time[3]),
                          True, None))
    timed = {}  # the first source with a time on each day
    for source, when, has_time, _ in found:
        if when is not None and has_time:
            timed.setdefault(when.date(), (source, when))
    notes: list[str] = []
    for source, when, has_time, note in found:
        if note:
            notes.append(note)
        if when is None:
            continue
        if not has_time:
            other = timed.get(when.date())
            if other is not None:
                time_tag = dict(TIME_SOURCES).get(other[0]) or other[0]
                notes.append(f"{source} has no time: the {time_tag} of the same day taken")
                when = other[1]
            else:
                notes.append(f"{source} {when:%Y-%m-%d} has no time anywhere in the header: 00:00 taken")
        stamp = pd.Timestamp(when)
        if usable(stamp):
            return stamp, notes
        notes.append(f"{source} {stamp:%Y-%m-%d %H:%M} is out of range or in the future: passed over")
    return None, notes


def display_values(ds, stored: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The stored values through the Modality LUT (or rescale) and the VOI LUT (or window) the header gives,
    and notes where one of them could not be used: an empty or unreadable rescale leaves the stored values,
    and a window of width below 1, a broken VOI LUT, or a window that makes a picture with detail blank
    (one outside every value) leaves the full range, which the ingest scales to 0..1 anyway."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    notes = []
    try:
        values = apply_modality_lut(stored, ds)
        if not np.isfinite(np.asarray(values, dtype=np.float64)).all() and np.isfinite(stored).all():
            raise ValueError("values not finite")
    except Exception:  # noqa: BLE001 - an empty DS gives None, a Modality LUT sequence may be damaged
        said = ", ".join(f"{tag} {_text(ds.get(tag))!r}" for tag in ("RescaleSlope", "RescaleIntercept")
                         if tag in ds)
        notes.append(f"the Modality LUT or rescale ({said or 'ModalityLUTSequence'}) cannot be applied: "
                     "the stored values used")
        values = stored
    has_voi = any(tag in ds for tag in ("VOILUTSequence", "WindowCenter", "WindowWidth"))
    if not has_voi:
        return values, notes
    try:
        shown = apply_voi_lut(values, ds)
        blank = float(np.ptp(shown)) == 0.0 and float(np.ptp(values)) > 0.0
        if blank:
            notes.append(f"the display window ({_window(ds)}) lies outside every pixel value: the full range used")
            return values, notes
        return shown, notes
    except Exception:  # noqa: BLE001 - pydicom refuses a width below 1 and damaged LUTs with its own kinds
        notes.append(f"the display window ({_window(ds)}) cannot be applied: the full range used")
        return values, notes


def _window(ds) -> str:
    said = ", ".join(f"{tag} {_text(ds.get(tag))!r}" for tag in ("WindowCenter", "WindowWidth") if tag in ds)
    return said or "VOILUTSequence"


def open_dataset(path: Path, **kwargs):
    """The file's dataset, and whether it was read without a DICOM file header (no 128-byte preamble and
    ``DICM``, as some archives export): such a file is read as implicit VR little endian, the default transfer
    syntax (PS3.5 10.1), when what it holds is a dataset with pixel data. Anything else raises
    ``pydicom.errors.InvalidDicomError`` ("not a DICOM file")."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.uid import ImplicitVRLittleEndian

    try:
        return pydicom.dcmread(path, **kwargs), False
    except InvalidDicomError:
        pass
    import logging
    import warnings

    logger = logging.getLogger("pydicom")
    disabled, logger.disabled = logger.disabled, True  # what pydicom says of other bytes read by force is no help
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True, **kwargs)
            rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    except Exception as exc:  # noqa: BLE001 - bytes that are not a dataset fail in many ways when forced
        raise InvalidDicomError("not a DICOM file") from exc
    finally:
        logger.disabled = disabled
    if rows <= 0 or columns <= 0 or ("PixelData" not in ds and not kwargs.get("stop_before_pixels")):
        raise InvalidDicomError("not a DICOM file")
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return ds, True
