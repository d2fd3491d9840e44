"""Real data into the bundle's tables: DICOM or PNG/JPEG radiographs, BNP results and patients.

Inputs
------
- radiographs: a folder of DICOM files (searched recursively), or a manifest CSV listing PNG/JPEG
  files with columns ``file`` (relative to the manifest), ``patient_id``, ``acquired_at`` and
  ``view`` (PA, AP, LATERAL, ...);
- ``bnp.csv``: ``patient_id``, ``collected_at``, ``bnp_ng_l`` (ng/L, equal to pg/mL);
- ``patients.csv``: ``patient_id``, ``sex`` (F/M), and ``birth_date`` or ``age_years`` (the age at
  the first radiograph).

What happens
------------
DICOM pixel data go through the Modality LUT and the VOI LUT (or window) of the file, MONOCHROME1 is
inverted so that bright is dense, and pixel spacing is kept in the exclusion-free summary. Images
are resized to the configured size preserving the aspect ratio (padded with black), and only
frontal views (PA, AP) are kept: every excluded or unreadable file is listed, with its reason, in
``cohort/exclusions.csv``. Radiographs are paired with BNP results as for the phantom
(:mod:`modelling.cohort.pairing`) and labelled patients split 80/20 by patient.

De-identification: patient identifiers are replaced by a salted HMAC-SHA256 (the salt stays with
you: ``--salt-file`` or ``GVR_SALT``), image identifiers by a salted hash of the SOP Instance UID
or file path, and dates of birth are reduced to ages. Nothing else from a DICOM header (names,
addresses, accession numbers, institution, physicians, other IDs) reaches a table or a file name.

Errors
------
A table with problems (a missing column, a BNP of zero or text, an unknown patient, duplicate
images, an unparseable timestamp) raises :class:`IngestError` listing every problem with file, row
and column, and nothing is written. Unreadable images are skipped and reported, not fatal.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import posixpath
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from data_schema.layout import SHARD_SIZE, image_path
from data_schema.tables import MASK_FEATURES, MAX_BNP_NG_L
from data_schema.validate import Problem, TableValidationError, layout_problems, repeated_header_names
from modelling.cohort.dicom_header import acquisition_time, display_values, open_dataset
from modelling.config import StudyConfig
from modelling.progress import progress

log = logging.getLogger(__name__)

FRONTAL_VIEWS = {"PA", "AP"}
#: Computed and digital radiography; everything else (CT, MR, NM, US, SEG, ...) is not a radiograph.
RADIOGRAPH_MODALITIES = {"CR", "DX"}
#: Secondary captures (digitised films), kept only when the user says so.
SECONDARY_CAPTURE = {"SC", "OT"}
GRAYSCALE = {"MONOCHROME1", "MONOCHROME2"}


class IngestError(TableValidationError):
    """Input tables with problems; ``.problems`` lists every one with file, row and column. Raised before
    the bundle is touched."""

    before_writing = True


# ---- timestamps ----------------------------------------------------------------------------------

_FORMATS = [
    (re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$"), None),  # ISO 8601
    (re.compile(r"^\d{14}(\.\d+)?$"), "%Y%m%d%H%M%S"),  # DICOM DT without zone
    (re.compile(r"^\d{8} \d{6}(\.\d+)?$"), "%Y%m%d %H%M%S"),  # DICOM DA + TM
    (re.compile(r"^\d{8}$"), "%Y%m%d"),  # DICOM DA
    (re.compile(r"^\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}(:\d{2})?$"), "slash"),
    (re.compile(r"^\d{1,2}/\d{1,2}/\d{4}$"), "slash"),
]


def parse_timestamp(text: str, *, dayfirst: bool = True) -> pd.Timestamp | None:
    """Parse one timestamp in any accepted format; None when it is not one.

    Accepted: ISO 8601 (``2012-03-04 05:06[:07]``), DICOM (``20120304050607``, ``20120304 050607``,
    ``20120304``) and slashed dates (``04/03/2012 05:06``), day first unless `dayfirst` is False.
    Time zones are refused: timestamps are local times of the hospital.
    """
    text = str(text).strip()
    for pattern, fmt in _FORMATS:
        if not pattern.match(text):
            continue
        try:
            if fmt is None:
                return pd.Timestamp(datetime.fromisoformat(text))
            if fmt == "slash":
                date, _, time = text.partition(" ")
                a, b, year = date.split("/")
                day, month = (a, b) if dayfirst else (b, a)
                time = time or "00:00"
                return pd.Timestamp(datetime.strptime(f"{year}-{int(month):02d}-{int(day):02d} {time}",
                                                      "%Y-%m-%d %H:%M" if time.count(":") == 1 else "%Y-%m-%d %H:%M:%S"))
            return pd.Timestamp(datetime.strptime(text.split(".")[0], fmt.split(".")[0]))
        except ValueError:
            return None
    return None


# ---- de-identification -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pseudonymiser:
    """Salted HMAC-SHA256 pseudonyms: the same input and salt give the same identifier."""

    salt: bytes

    def __post_init__(self):
        if len(self.salt) < 16:
            raise ValueError("the de-identification salt must be at least 16 bytes; keep it secret and outside the bundle")

    def __call__(self, kind: str, value: str) -> str:
        digest = hmac.new(self.salt, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
        return f"{kind[0]}{digest[:20]}"


# ---- images ----------------------------------------------------------------------------------------


def fit_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to `size` x `size` preserving the aspect ratio (area averaging), padding with black."""
    from PIL import Image

    h, w = image.shape
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    resized = np.asarray(Image.fromarray(image.astype(np.float32), mode="F").resize((nw, nh), Image.BOX))
    out = np.zeros((size, size), np.float32)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top:top + nh, left:left + nw] = resized
    return out


def _to_unit(pixels: np.ndarray) -> np.ndarray:
    pixels = pixels.astype(np.float32)
    if not np.isfinite(pixels).all():  # NaN would pass the blank check below and be stored as a black image
        bad = int((~np.isfinite(pixels)).sum())
        raise ValueError(f"{bad:,} of {pixels.size:,} pixel values are not finite (NaN or infinity)")
    low, high = float(pixels.min()), float(pixels.max())
    if high <= low:
        raise ValueError("the image is blank (all pixels equal)")
    return (pixels - low) / (high - low)


@dataclass(frozen=True)
class Loaded:
    """One radiograph read from disk: as read by :func:`read_dicom`, then held at the bundle's size (with
    the size it was read at in ``shape``), so that thousands of full-size films never sit in memory at once."""

    source: str
    patient_key: str
    image_key: str
    acquired: pd.Timestamp | None
    view: str
    pixels: np.ndarray | None  # 0..1, bright = dense
    spacing_mm: tuple[float, float] | None
    row: int | None = None  # the manifest row it came from (PNG/JPEG)
    shape: tuple[int, int] | None = None  # (rows, columns) as read, before fitting to the bundle's size
    colour: bool = False  # a PNG/JPEG whose colour channels differ (a photograph or an annotated screenshot?)
    #: Where the header was incomplete or wrong and a choice was made (:mod:`modelling.cohort.dicom_header`).
    notes: tuple[str, ...] = ()


class _Captured(logging.Handler):
    """pydicom's own log lines while one file is read, kept for that file's exclusion reason."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage().strip()
        if text and not text.startswith("Traceback"):
            self.lines.append(" ".join(text.split()))


def read_dicom(path: Path, *, modalities: set[str] | frozenset[str] = frozenset(RADIOGRAPH_MODALITIES)) -> Loaded:
    """Read one DICOM radiograph; raise ValueError with the reason when it cannot be used.

    Only `modalities` (CR and DX by default) in grayscale (MONOCHROME1 or MONOCHROME2) are kept;
    compressed pixel data (JPEG, JPEG-LS, JPEG 2000, RLE) decode through pylibjpeg. pydicom's own
    log lines while the file is read go into the reason instead of onto the terminal.
    """
    import warnings

    logger = logging.getLogger("pydicom")
    captured = _Captured()
    logger.addHandler(captured)
    propagate, logger.propagate = logger.propagate, False
    try:
        with warnings.catch_warnings(record=True) as caught:  # pydicom warns and logs the same notes
            warnings.simplefilter("always")
            try:
                return _read_dicom(path, modalities)
            except ValueError:
                raise
            except Exception as exc:  # a damaged header: pydicom raises its own kinds while parsing
                message = " ".join(str(exc).split())
                raise ValueError(f"not a readable DICOM file ({type(exc).__name__}: {message})") from exc
    except ValueError as exc:
        notes = captured.lines or [" ".join(str(w.message).split()) for w in caught]
        if notes and str(exc) != "not a DICOM file":  # what pydicom said of bytes read by force is no help
            raise ValueError(f"{exc}; pydicom: {notes[-1]}") from exc
        raise
    finally:
        logger.removeHandler(captured)
        logger.propagate = propagate


def _read_dicom(path: Path, modalities) -> Loaded:
    from pydicom.errors import InvalidDicomError

    try:
        ds, headerless = open_dataset(path)
    except InvalidDicomError as exc:
        if str(exc) == "not a DICOM file":
            raise ValueError("not a DICOM file") from exc
        raise ValueError(f"not a readable DICOM file ({type(exc).__name__}: {exc})") from exc
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"not a readable DICOM file ({type(exc).__name__}: {exc})") from exc
    if "PixelData" not in ds:
        raise ValueError("DICOM file without pixel data")
    modality = str(ds.get("Modality", "") or "").upper().strip()
    if modality not in modalities:
        kept = " and ".join(sorted(modalities))
        raise ValueError(f"modality {modality or 'missing'} is not a radiograph ({kept} are kept"
                         + ("" if "SC" in modalities else "; --secondary-capture keeps SC and OT") + ")")
    photometric = str(ds.get("PhotometricInterpretation", "") or "").upper().strip()
    if photometric not in GRAYSCALE:
        raise ValueError(f"photometric interpretation {photometric or 'missing'} is not grayscale "
                         "(MONOCHROME1 or MONOCHROME2 are kept)")
    view = str(ds.get("ViewPosition", "") or "").upper().strip()
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:  # decoding every frame of a cine or tomosynthesis series only to refuse it would be slow
        raise ValueError(f"{frames} frames (NumberOfFrames); one still radiograph per file is expected")
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # truncated or undecodable pixel data: pydicom raises many kinds
        message = " ".join(str(exc).split())
        raise ValueError(f"pixel data cannot be decoded ({type(exc).__name__}: {message})") from exc
    if pixels.ndim != 2:
        raise ValueError(f"{pixels.shape[0]} frames; one still radiograph per file is expected")
    notes = ["read without its DICOM file header (preamble and meta information)"] if headerless else []
    pixels, shown = display_values(ds, pixels)
    unit = _to_unit(pixels)
    if photometric == "MONOCHROME1":
        unit = 1.0 - unit  # MONOCHROME1 shows low values bright: invert so bright = dense
    stamp, timed = acquisition_time(ds, lambda t: storable(t) and not in_future(t))
    return Loaded(
        source=str(path),
        patient_key=str(ds.get("PatientID", "") or ""),
        image_key=str(ds.get("SOPInstanceUID", "") or path),
        acquired=stamp,
        view=view,
        pixels=unit,
        spacing_mm=_spacing(ds),
        notes=tuple(notes + shown + timed),
    )


def _spacing(ds) -> tuple[float, float] | None:
    """(row, column) pixel spacing in mm, or None when the header gives none that can be used (a zero,
    negative or unreadable spacing is no spacing)."""
    for tag in ("PixelSpacing", "ImagerPixelSpacing"):
        spacing = ds.get(tag)
        try:
            values = (float(spacing[0]), float(spacing[1])) if spacing else None
        except (TypeError, ValueError, IndexError):
            continue
        if values and all(np.isfinite(v) and v > 0 for v in values):
            return values
    return None


#: A picture whose colour channels differ, on average, by more than this many grey levels (of 255) from their
#: mean is in colour: a radiograph saved as RGB has equal channels (JPEG noise stays well below this).
COLOUR_LEVELS = 2.0


def read_picture(path: Path) -> np.ndarray:
    """A still image (PNG or JPEG; any single-frame image Pillow reads) as grayscale 0..1 (bright =
    dense, as radiographs are exported); an animation or a stack of frames is refused."""
    return read_picture_and_colour(path)[0]


def read_picture_and_colour(path: Path) -> tuple[np.ndarray, bool]:
    """:func:`read_picture`, and whether the picture is in colour (its channels differ by more than
    :data:`COLOUR_LEVELS` grey levels on average): it is read as the mean of its channels all the same."""
    image, _, colour = read_still(path)
    return _to_unit(image), colour


#: Pillow modes read as one grey channel, with the full scale of their values (other modes are read as RGB, 255).
GREY_MODES = {"1": 1.0, "L": 255.0, "I": 65535.0, "I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "F": 1.0}


def read_still(path: Path, what: str = "radiograph") -> tuple[np.ndarray, float, bool]:
    """One still image's pixels as Pillow reads them (a colour one as the float32 mean of its RGB channels),
    the full scale of its values, and whether it is in colour; an animation or a stack of frames is refused
    (an MPO JPEG's later frames are previews of its first), and so is an unreadable file (ValueError)."""
    from PIL import Image

    colour, full = False, 255.0
    try:
        with Image.open(path) as picture:
            frames, kind, image = int(getattr(picture, "n_frames", 1) or 1), picture.format, None
            if frames == 1 or kind == "MPO":
                if picture.mode in GREY_MODES:
                    image, full = np.asarray(picture), GREY_MODES[picture.mode]
                else:  # palette, colour, with alpha: to RGB, then the mean of the channels
                    rgb = np.asarray(picture.convert("RGB")).astype(np.float32)
                    image = rgb.mean(axis=-1)
                    colour = bool(np.abs(rgb - image[..., None]).mean() > COLOUR_LEVELS)
    except Exception as exc:  # Pillow raises format-specific errors for corrupt files
        raise ValueError(f"not a readable image ({type(exc).__name__}: {exc})") from exc
    if image is None:
        raise ValueError(f"{frames} frames ({kind}); one still {what} per file is expected")
    if image.ndim != 2:
        raise ValueError(f"expected one grayscale or colour frame, got an array of shape {image.shape}")
    return image, full, colour


# ---- tables ----------------------------------------------------------------------------------------


def public_reason(reason: str) -> str:
    """An exclusion reason without the reader's own message, which may quote the file's path.

    ``"not a readable image (FileNotFoundError: [Errno 2] ... '/x/Smith_John/a.png')"`` becomes
    ``"not a readable image (FileNotFoundError)"``; reasons of our own wording are kept whole.
    """
    head, sep, tail = reason.partition(" (")
    if not sep:
        return reason
    kind = tail.split(":", 1)[0].rstrip(")")
    if kind.isidentifier() and (kind.endswith(("Error", "Exception", "Warning"))):
        return f"{head} ({kind})"
    return reason if "/" not in tail and "\\" not in tail else head


def _decode_problem(path: Path, exc: UnicodeDecodeError) -> Problem:
    """Where a file stops being UTF-8: the line (and row) holding the offending byte."""
    raw = Path(path).read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as whole:  # the parser's offset is within its own buffer; this one is the file's
        exc = whole
    line = raw[: exc.start].count(b"\n") + 1
    byte = raw[exc.start: exc.start + 1].hex()
    return Problem(str(path), line - 1 if line > 1 else None, None, None,
                   f"not UTF-8 text: byte 0x{byte} on line {line} (an accented letter saved as Latin-1 or "
                   "Windows-1252?); save the file as UTF-8")


def _read_csv(path: Path, required: list[str]) -> tuple[pd.DataFrame, list[Problem]]:
    """A CSV as text columns, or the one problem that makes it unusable (unreadable, no rows, a column missing)."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError as exc:
        return pd.DataFrame(), [_decode_problem(path, exc)]
    except pd.errors.EmptyDataError:
        return pd.DataFrame(), [Problem(str(path), None, None, None, "empty file (no header, no rows)")]
    except Exception as exc:  # the parser says what is broken; name the file
        return pd.DataFrame(), [Problem(str(path), None, None, None, f"not a readable CSV file: {exc}")]
    repeated = repeated_header_names(path)  # pandas would read the second as "name.1" and ingest ignore it
    if repeated:
        return df, repeated
    missing = [c for c in required if c not in df.columns]
    if missing:
        return df, [Problem(str(path), None, c, None, f"missing column{_header_hint(list(df.columns), c)}")
                    for c in missing]
    if df.empty:
        return df, [Problem(str(path), None, None, None, "no rows (only a header)")]
    return df, layout_problems(path)


def _header_hint(header: list[str], column: str) -> str:
    """What the header has instead of `column`: a padded or differently cased name, a close spelling, or a
    header that is one field (another separator)."""
    import difflib

    near = [h for h in header if h.strip().lower() == column]
    if near:
        return f" (the header has {near[0]!r}: names are matched exactly, without spaces)"
    if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
        return f" (the header is one field, {header[0]!r}: columns must be separated by commas)"
    close = difflib.get_close_matches(column, header, n=1, cutoff=0.75)
    if close:
        return f" (the header has {close[0]!r}, spelled close to it)"
    return f" (the header has: {', '.join(map(repr, header))})" if header else ""


#: The times a bundle can store (nanoseconds since 1970 in 64 bits).
_STORABLE = (pd.Timestamp.min, pd.Timestamp.max)


def storable(stamp: pd.Timestamp) -> bool:
    """Whether a bundle can store the time (1677-09-21 to 2262-04-11)."""
    return bool(_STORABLE[0] <= stamp <= _STORABLE[1])


def in_future(stamp: pd.Timestamp) -> bool:
    """Later than tomorrow: no record can be, so it is a typo (a day's slack, since the times carry no zone)."""
    return stamp > pd.Timestamp.now() + pd.Timedelta(days=1)


def _timestamp(text: str, path, row: int, column: str, problems: list[Problem], *, dayfirst: bool):
    """One cell's timestamp, or None with its problem added."""
    stamp = parse_timestamp(text, dayfirst=dayfirst) if text.strip() else None
    if stamp is None:
        order = "DD/MM/YYYY" if dayfirst else "MM/DD/YYYY"
        other = parse_timestamp(text, dayfirst=not dayfirst) if text.strip() else None
        hint = ("" if other is None else
                f"; it reads as {other:%Y-%m-%d %H:%M} month first: give --month-first" if dayfirst else
                f"; it reads as {other:%Y-%m-%d %H:%M} day first: leave out --month-first")
        problems.append(Problem(str(path), row, column, text,
                                f"not a timestamp (ISO 8601, DICOM or {order} HH:MM; no time zone){hint}"))
    elif not storable(stamp):
        problems.append(Problem(str(path), row, column, text,
                                f"outside the years {_STORABLE[0].year + 1}-{_STORABLE[1].year - 1} (a typo?)"))
        stamp = None
    elif in_future(stamp):
        problems.append(Problem(str(path), row, column, text, "in the future (a typo?)"))
        stamp = None
    return stamp


def _first_few(items, n: int = 5) -> str:
    """The first `n` items comma-separated, and ", ..." when there are more.

    >>> _first_few([1, 2, 3], 2)
    '1, 2, ...'
    """
    return ", ".join(map(str, items[:n])) + (", ..." if len(items) > n else "")


def _timestamps(df, column, path, problems, *, dayfirst):
    for line in date_order_notes(df[column], dayfirst=dayfirst):
        log.warning("%s: column %r: %s", path, column, line)
    return [_timestamp(text, path, i + 1, column, problems, dayfirst=dayfirst) for i, text in enumerate(df[column])]


def date_order_notes(texts, *, dayfirst: bool) -> list[str]:
    """What a column's timestamps leave to the reader's assumption, in sentences (empty when nothing).

    A slashed date whose two first numbers are both 12 or less reads either way: when no slashed date
    in the column has a number above 12 in one of those places, the order is the ``--month-first``
    choice alone, and says so. A column that mixes slashed dates with other formats (ISO 8601, DICOM)
    was most likely filled from more than one source, whose orders may differ. Rows whose order is
    contradicted (a "day" above 12 read month first) are errors elsewhere, not notes.

    >>> date_order_notes(["04/03/2012", "05/06/2013"], dayfirst=True)
    ['2 slashed dates (rows 1, 2), none with a day above 12: read day first (DD/MM/YYYY); give --month-first if they are MM/DD/YYYY']
    >>> date_order_notes(["25/03/2012", "05/06/2013"], dayfirst=True)
    []
    """
    slashed, other, confirmed = [], 0, False
    for row, text in enumerate(texts, start=1):
        text = str(text).strip()
        if not text:
            continue
        if re.match(r"^\d{1,2}/\d{1,2}/\d{4}", text):
            slashed.append(row)
            first, second = (int(v) for v in text.split("/")[:2])
            confirmed |= (first > 12) if dayfirst else (second > 12)
        else:
            other += 1

    notes = []
    if slashed and not confirmed:
        notes.append(f"{len(slashed)} slashed date{'s' if len(slashed) > 1 else ''} (rows {_first_few(slashed)}), none "
                     + ("with a day above 12: read day first (DD/MM/YYYY); give --month-first if they are MM/DD/YYYY"
                        if dayfirst else
                        "with a day above 12: read month first (MM/DD/YYYY); leave out --month-first if they are "
                        "DD/MM/YYYY"))
    if slashed and other:
        notes.append(f"mixes {len(slashed)} slashed date(s) (rows {_first_few(slashed)}) with {other} in other formats "
                     "(ISO 8601 or DICOM): if they come from different systems, check that the slashed ones are "
                     + ("day first" if dayfirst else "month first"))
    return notes


def read_patients(path: Path, pseudo: Pseudonymiser, *, dayfirst: bool = True) -> tuple[pd.DataFrame, list[Problem]]:
    """patients.csv checked row by row; ``.attrs["usable"]`` is False when the file as a whole is not."""
    df, problems = _read_csv(path, list(INPUT_COLUMNS["patients_input"][0]))
    if len(df.columns) and "birth_date" not in df.columns and "age_years" not in df.columns:  # beside any other
        problems = [p for p in problems if p.row is None] + [
            Problem(str(path), None, "birth_date", None, "missing column (or give age_years)")]
    if problems:
        out = pd.DataFrame(columns=["key", "patient_id", "sex", "birth", "age_given", "row"])
        out.attrs["usable"] = False
        return out, problems
    for i, key in enumerate(df["patient_id"]):
        if not key.strip():
            problems.append(Problem(str(path), i + 1, "patient_id", key, "missing value"))
    dup = df["patient_id"].str.strip().duplicated(keep="first")
    first_row = {k: i + 1 for i, k in reversed(list(enumerate(df["patient_id"].str.strip())))}
    for i in np.flatnonzero(dup):
        key = df["patient_id"].iloc[i].strip()
        problems.append(Problem(str(path), i + 1, "patient_id", key, f"duplicate patient (first in row {first_row[key]})"))
    for i, sex in enumerate(df["sex"]):
        if sex.strip().upper() not in ("F", "M"):
            problems.append(Problem(str(path), i + 1, "sex", sex, "must be F or M"))
    # each row needs a birth date or an age; a file may hold both columns, filled row by row
    has_birth, has_age = "birth_date" in df.columns, "age_years" in df.columns
    births: list = [None] * len(df)
    ages = np.full(len(df), np.nan)
    for i in range(len(df)):
        birth = df["birth_date"].iloc[i].strip() if has_birth else ""
        age = df["age_years"].iloc[i].strip() if has_age else ""
        if not birth and not age:
            problems.append(Problem(str(path), i + 1, "birth_date" if has_birth else "age_years", "",
                                    "missing value" + (" (give birth_date or age_years)" if has_birth and has_age
                                                       else "")))
        if birth:
            births[i] = _timestamp(birth, path, i + 1, "birth_date", problems, dayfirst=dayfirst)
        if age:
            value = pd.to_numeric(age, errors="coerce")
            if 0 <= value <= 120:
                ages[i] = value
            else:
                problems.append(Problem(str(path), i + 1, "age_years", age, "must be a number from 0 to 120"))
    out = pd.DataFrame({
        "key": df["patient_id"].str.strip(),
        "patient_id": [pseudo("patient", k.strip()) for k in df["patient_id"]],
        "sex": df["sex"].str.strip().str.upper(),
        "birth": births,
        "age_given": ages,
        "row": np.arange(1, len(df) + 1),
    })
    out.attrs["usable"] = True
    return out, problems


def read_bnp(path: Path, known: set[str] | None, pseudo: Pseudonymiser, *,
             dayfirst: bool) -> tuple[pd.DataFrame, list[Problem]]:
    """bnp.csv checked row by row; ``known=None`` skips the patient check (the patients file is unusable)."""
    df, problems = _read_csv(path, list(INPUT_COLUMNS["bnp_input"][0]))
    if problems:
        return pd.DataFrame(columns=["patient_id", "collected_at", "bnp_ng_l", "row"]), problems
    for i, key in enumerate(df["patient_id"]):
        if known is not None and key.strip() not in known:
            problems.append(Problem(str(path), i + 1, "patient_id", key, "BNP result for a patient not in the patients file"))
    text = df["bnp_ng_l"].str.strip()
    censored = text.str.match(r"^[<>]")
    if censored.any():  # "<5" or ">5000": kept at the limit, as labs report them; said aloud
        rows = [int(i) + 1 for i in np.flatnonzero(censored.to_numpy())]
        log.warning("%s: %d BNP value(s) reported beyond the assay's limit are used at the limit, column "
                    "'bnp_ng_l', row(s) %s (e.g. %r)", path, len(rows),
                    _first_few(rows, 10), text[censored].iloc[0])
    values = pd.to_numeric(text.str.replace(r"^[<>]", "", regex=True), errors="coerce")  # one sign: ">>5" is a typo
    for i in np.flatnonzero(~(values > 0)):
        problems.append(Problem(str(path), i + 1, "bnp_ng_l", df["bnp_ng_l"].iloc[i],
                                "BNP must be a positive number of ng/L (a zero, text or blank is refused)"))
    for i in np.flatnonzero(values > MAX_BNP_NG_L):
        problems.append(Problem(str(path), i + 1, "bnp_ng_l", df["bnp_ng_l"].iloc[i],
                                f"above {MAX_BNP_NG_L:,.0f} ng/L, beyond every assay's range (a typo, or pmol/L?)"))
    stamps = _timestamps(df, "collected_at", path, problems, dayfirst=dayfirst)
    # two different results of one patient at one time: which would label a radiograph is not knowable
    first: dict[tuple, int] = {}
    for i, (key, stamp, value) in enumerate(zip(df["patient_id"].str.strip(), stamps, values)):
        if stamp is None or not 0 < value <= MAX_BNP_NG_L:  # a bad value or time is its own problem
            continue
        j = first.setdefault((key, stamp), i)
        if j != i and values.iloc[j] != value:
            problems.append(Problem(str(path), i + 1, "bnp_ng_l", df["bnp_ng_l"].iloc[i],
                                    f"another result for this patient at the same time (row {j + 1}: "
                                    f"{df['bnp_ng_l'].iloc[j]}); keep the one that was reported"))
    out = pd.DataFrame({
        "patient_id": [pseudo("patient", k.strip()) for k in df["patient_id"]],
        "collected_at": stamps,
        "bnp_ng_l": values,
        "row": np.arange(len(df)),
    })
    out.attrs["censored"] = int(censored.sum())
    return out, problems


@dataclass(frozen=True)
class IngestSources:
    """Where the real data lie.

    ``secondary_capture`` keeps DICOM secondary captures (Modality SC or OT) that are grayscale
    frontal chest images, for archives that store digitised films that way; by default only CR and
    DX are radiographs.
    """

    patients_csv: Path
    bnp_csv: Path
    dicom_dir: Path | None = None
    manifest_csv: Path | None = None
    dayfirst: bool = True
    secondary_capture: bool = False
    masks_csv: Path | None = None  # segmentations (:mod:`modelling.cohort.masks_input`)

    def __post_init__(self):
        if (self.dicom_dir is None) == (self.manifest_csv is None):
            raise ValueError("give exactly one of dicom_dir (a DICOM folder) or manifest_csv (PNG/JPEG files)")

    def files(self) -> list[Path]:
        """Every input file: the tables, and the DICOM folder's files or the manifest and the images it lists
        (so that a replaced image makes the cohort out of date)."""
        out = [self.patients_csv, self.bnp_csv]
        if self.dicom_dir is not None:
            out += sorted(p for p in Path(self.dicom_dir).rglob("*") if p.is_file())
        else:
            out.append(self.manifest_csv)
            out += sorted(p for p in (Path(self.manifest_csv).parent / n for n in self.image_names()) if p.is_file())
        if self.masks_csv is not None:
            out.append(self.masks_csv)
            out += sorted(p for p in (Path(self.masks_csv).parent / n for n in _column_names(self.masks_csv, "mask"))
                          if p.is_file())
        return out

    def image_names(self) -> set[str]:
        """Every radiograph's name among the inputs: the manifest's files, or the paths inside the DICOM folder."""
        return image_names(self.dicom_dir, self.manifest_csv)


def image_names(dicom_dir: Path | None, manifest_csv: Path | None) -> set[str]:
    """Every radiograph's name among the inputs: the manifest's files, or the paths inside the DICOM folder."""
    if dicom_dir is not None:
        return {p.relative_to(dicom_dir).as_posix() for p in Path(dicom_dir).rglob("*") if p.is_file()}
    return _column_names(manifest_csv, "file")


def _column_names(csv: Path, column: str) -> set[str]:
    """The file names a CSV column lists, each as one spelling (empty when the CSV cannot be read: the
    ingest reports that itself)."""
    try:
        names = pd.read_csv(csv, dtype=str, keep_default_na=False, usecols=[column])[column]
    except Exception:  # noqa: BLE001
        names = []
    return {listed_name(n) for n in names if n.strip()}


#: Why an absolute path in an input CSV is refused.
ABSOLUTE = "an absolute path: paths are relative to the CSV's folder"


def is_absolute(name: str) -> bool:
    """Whether a listed name (:func:`listed_name`) is an absolute path, POSIX or Windows (``C:/x``)."""
    return name.startswith("/") or re.match(r"^[A-Za-z]:/", name) is not None


def listed_name(name: str) -> str:
    """A manifest's file name as one spelling: ``./img/a.png`` and ``img//a.png`` are ``img/a.png``."""
    return posixpath.normpath(name.strip().replace("\\", "/"))


def _listed_files(df: pd.DataFrame, manifest: Path, problems: list[Problem]) -> dict[str, int]:
    """Each file the manifest lists (:func:`listed_name`), with the row that first lists it; blanks and
    repeats, under any spelling, are problems."""
    first_row: dict[str, int] = {}
    by_file: dict[Path, int] = {}  # the same file under two spellings (relative and absolute, a link)
    for i, raw in enumerate(df["file"]):
        name = listed_name(raw) if raw.strip() else ""
        if not name:
            problems.append(Problem(str(manifest), i + 1, "file", raw, "missing value"))
        elif is_absolute(name):
            problems.append(Problem(str(manifest), i + 1, "file", raw, ABSOLUTE))
        elif name in first_row:
            problems.append(Problem(str(manifest), i + 1, "file", raw, f"duplicate of row {first_row[name]}"))
        elif (file := (manifest.parent / name).resolve()) in by_file:
            problems.append(Problem(str(manifest), i + 1, "file", raw, f"the same file as row {by_file[file]}"))
        else:
            first_row[name] = by_file[file] = i + 1
    return first_row


def _manifest_files(manifest: Path) -> tuple[pd.DataFrame, dict[str, int] | None, list[Problem]]:
    """A manifest read and its files checked on their own (:func:`_listed_files`, and each listed file there):
    the table, each file with the row that lists it (None when the table itself is unusable), and the
    problems."""
    df, problems = _read_csv(manifest, list(INPUT_COLUMNS["images_manifest"][0]))
    if problems:
        return df, None, problems
    first_row = _listed_files(df, manifest, problems)
    problems += [Problem(str(manifest), row, "file", name, "no such file (paths are relative to the CSV)")
                 for name, row in first_row.items() if not (manifest.parent / name).is_file()]
    return df, first_row, problems


def _fitted(item: Loaded, size: int) -> Loaded:
    return replace(item, pixels=fit_square(item.pixels, size), shape=tuple(item.pixels.shape))


#: A frontal chest radiograph is about square (35 x 43 cm and 43 x 43 cm cassettes and detectors); one side more
#: than this many times the other is a strip, a scout line or a stitched long-bone film, not one.
MAX_SIDE_RATIO = 3.0


def shape_reason(shape: tuple[int, ...]) -> str | None:
    """Why an image of this (rows, columns) is not the shape of a chest radiograph, or None.

    >>> shape_reason((1, 300)), shape_reason((2048, 2500)) is None
    ('not the shape of a chest radiograph (1 x 300 px: one side more than 3 times the other)', True)
    """
    rows, columns = int(shape[0]), int(shape[1])
    if max(rows, columns) > MAX_SIDE_RATIO * min(rows, columns):  # the size in brackets: counted as one reason
        return (f"not the shape of a chest radiograph ({rows} x {columns} px: one side more than "
                f"{MAX_SIDE_RATIO:g} times the other)")
    return None


def _load_images(src: IngestSources, problems: list[Problem], size: int):
    """Loaded radiographs, fitted to `size` x `size`, and exclusion records; problems of the manifest
    table go to `problems`."""
    loaded, excluded = [], []
    if src.dicom_dir is not None:
        files = sorted(p for p in Path(src.dicom_dir).rglob("*") if p.is_file())
        modalities = RADIOGRAPH_MODALITIES | (SECONDARY_CAPTURE if src.secondary_capture else set())
        with progress(total=len(files), desc="reading DICOM", unit="file") as bar:
            for path in files:
                bar.update(1)
                try:
                    item = read_dicom(path, modalities=modalities)
                except ValueError as exc:
                    excluded.append((str(path), str(exc)))
                    continue
                if item.image_key == str(path):  # no SOP Instance UID: the file's place in the folder, however named
                    item = replace(item, image_key=path.relative_to(src.dicom_dir).as_posix())
                if (reason := shape_reason(item.pixels.shape)) is not None:
                    excluded.append((str(path), reason))
                    continue
                loaded.append(_fitted(item, size))
        return loaded, excluded
    manifest = Path(src.manifest_csv)
    df, first_row, found = _manifest_files(manifest)
    problems.extend(found)
    if first_row is None:
        return loaded, excluded
    stamps = _timestamps(df, "acquired_at", manifest, problems, dayfirst=src.dayfirst)
    with progress(total=len(df), desc="reading images", unit="file") as bar:
        for i, row in enumerate(df.itertuples(index=False)):
            bar.update(1)
            name = listed_name(row.file)
            if first_row.get(name) != i + 1:
                continue  # reported above
            path = manifest.parent / name
            if not path.is_file():  # the manifest's error, reported with the others above, as `gvr validate` says
                continue
            try:
                pixels, colour = read_picture_and_colour(path)
            except (ValueError, FileNotFoundError) as exc:
                excluded.append((str(path), str(exc)))
                continue
            if (reason := shape_reason(pixels.shape)) is not None:
                excluded.append((str(path), reason))
                continue
            loaded.append(_fitted(Loaded(str(path), row.patient_id.strip(), name, stamps[i],
                                         row.view.strip().upper(), pixels, None, row=i + 1, colour=colour), size))
    return loaded, excluded


def image_key_table(dicom_dir: Path | None, manifest_csv: Path | None, pseudo: Pseudonymiser) -> pd.DataFrame:
    """Each input radiograph's ``image_id`` (as the ingest pseudonymises it with this salt) beside its file:
    the manifest's name, or the path inside the DICOM folder. A re-identification key: it stays with the
    salt, outside the bundle. Files of a DICOM folder that are not DICOM, or hold no image (a DICOMDIR), are left
    out; a file without its DICOM header is keyed as the ingest reads it.

    Raises
    ------
    IngestError
        A manifest with problems (columns, blank or repeated files, files that are not there), each by row
        and column, as the ingest reports them: a key of the wrong file would re-identify nothing.
    ValueError
        When no radiograph is found.
    """
    rows = []
    if dicom_dir is None:
        _, first_row, problems = _manifest_files(Path(manifest_csv))
        if problems:
            raise IngestError(problems)
        rows = [(pseudo("image", name), name) for name in sorted(first_row)]
    else:
        folder = Path(dicom_dir)
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            try:
                ds, _ = open_dataset(path, stop_before_pixels=True)
            except Exception:  # noqa: BLE001 - not a DICOM file: the ingest excludes it with its reason
                continue
            if "Rows" not in ds:  # a DICOMDIR, a report, a presentation state: no image to key
                continue
            name = path.relative_to(folder).as_posix()
            rows.append((pseudo("image", str(ds.get("SOPInstanceUID", "") or name)), name))
    if not rows:
        raise ValueError(f"no radiographs found in {manifest_csv if dicom_dir is None else dicom_dir}"
                         + ("" if dicom_dir is None else " (no readable DICOM file)"))
    return pd.DataFrame(rows, columns=["image_id", "file"])


def exclusion_summary(excluded: list[tuple[str, str]]) -> dict[str, int]:
    """Excluded files counted by reason (the reason's wording before any detail in brackets)."""
    counts: dict[str, int] = {}
    for _, reason in excluded:
        head = public_reason(reason).split(" (")[0]
        counts[head] = counts.get(head, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass(frozen=True)
class Prepared:
    """Real data read, checked and de-identified, ready to be written (nothing is written yet)."""

    patients: pd.DataFrame
    radiographs: pd.DataFrame
    bnp_results: pd.DataFrame
    images: list[Loaded]
    excluded: list[tuple[str, str]]
    censored: int
    #: Packed masks (:mod:`modelling.cohort.masks_input`) by the radiograph's ``image_key``; empty without them.
    masks: dict = field(default_factory=dict)
    #: The features the masks file segments, in MASK_FEATURES order.
    segmented: tuple[str, ...] = ()
    #: Masks of radiographs read but not kept (a lateral view, say), passed over.
    masks_passed_over: int = 0


def prepare(config: StudyConfig, src: IngestSources, pseudo: Pseudonymiser) -> Prepared:
    """Read and check every input; raise :class:`IngestError` naming each problem's input file, row and column.

    Nothing is written: a bundle is only touched once its inputs are known to be good.
    """
    problems: list[Problem] = []
    patients, found = read_patients(src.patients_csv, pseudo, dayfirst=src.dayfirst)
    problems += found
    known = set(patients["key"]) if patients.attrs.get("usable") else None
    bnp, found = read_bnp(src.bnp_csv, known, pseudo, dayfirst=src.dayfirst)
    problems += found
    if known is not None:
        problems += _bnp_before_birth(src.bnp_csv, patients, bnp)
    loaded, excluded = _load_images(src, problems, config.image_size)

    keep = []
    seen: dict[str, Loaded] = {}
    for item in loaded:
        if item.view not in FRONTAL_VIEWS:
            said = f"ViewPosition {item.view!r}" if item.view else "no ViewPosition"
            if item.row is not None:
                said = f"view {item.view!r}" if item.view else "no view"
            excluded.append((item.source, f"not a frontal view ({said}); PA and AP are kept"))
            continue
        if item.row is None and not item.patient_key.strip():
            excluded.append((item.source, "no PatientID (0010,0020) to find the patient by"))
            continue
        if known is not None and item.patient_key not in known:
            if item.row is not None:  # a manifest row names its patient, as a BNP row does: an error at that row
                problems.append(Problem(str(src.manifest_csv), item.row, "patient_id", item.patient_key,
                                        "image of a patient not in the patients file"))
            else:  # a DICOM folder may hold other patients' films: the patients file chooses the cohort
                excluded.append((item.source, "patient not in the patients file"))
            continue
        if item.acquired is None:
            excluded.append((item.source, "no acquisition date and time"
                             + (f" ({'; '.join(item.notes)})" if item.notes else "")))
            continue
        if item.image_key in seen:
            if item.row is None:
                problems.append(Problem(item.source, None, None, None,
                                        f"the same SOPInstanceUID (0008,0018) as {seen[item.image_key].source}: "
                                        "one image twice; remove one of the copies"))
            else:
                problems.append(Problem(item.source, item.row, "image", None,
                                        f"duplicate image (same file as {seen[item.image_key].source})"))
            continue
        seen[item.image_key] = item
        keep.append(item)
    ages = _ages(patients, keep) if known is not None else []
    if known is not None:
        problems += _age_problems(src.patients_csv, patients, keep, ages)
    masks, segmented, passed_over = _masks(src, keep, config.image_size, problems)
    if problems:
        raise IngestError(problems)
    for line in image_notes(keep, config.image_size, manifest=src.manifest_csv):
        log.warning("%s", line)
    if not keep:
        first = {}
        for source, reason in excluded:
            first.setdefault(public_reason(reason).split(" (")[0], source)
        reasons = "; ".join(f"{n} {reason}, e.g. {first[reason]}" for reason, n in exclusion_summary(excluded).items())
        raise IngestError([Problem(str(src.dicom_dir or src.manifest_csv), None, None, None,
                                   f"no usable frontal radiograph: {len(excluded)} file(s) excluded"
                                   + (f" ({reasons})" if reasons else ""))])

    order = sorted(range(len(keep)), key=lambda i: (keep[i].acquired, pseudo("image", keep[i].image_key)))
    keep, ages = [keep[i] for i in order], [ages[i] for i in order]
    pid = {k: p for k, p in zip(patients["key"], patients["patient_id"])}
    radiographs = pd.DataFrame({
        "image_id": [pseudo("image", it.image_key) for it in keep],
        "patient_id": [pid[it.patient_key] for it in keep],
        "acquired_at": pd.to_datetime([it.acquired for it in keep]),
    })
    radiographs["age_years"] = [round(a, 2) for a in ages]
    radiographs["projection"] = [it.view for it in keep]
    index = np.arange(len(keep))
    radiographs["image_path"] = [image_path(s) for s in index // SHARD_SIZE]
    radiographs["image_index"] = index % SHARD_SIZE
    radiographs["height_px"] = config.image_size
    radiographs["width_px"] = config.image_size
    radiographs["pixel_spacing_mm"] = [
        it.spacing_mm[0] * max(it.shape) / config.image_size if it.spacing_mm else np.nan for it in keep
    ]
    used = sorted(set(radiographs["patient_id"]))
    first_age = radiographs.groupby("patient_id")["age_years"].min()
    sex = dict(zip(patients["patient_id"], patients["sex"]))
    patients_out = pd.DataFrame({
        "patient_id": used,
        "sex": [sex[p] for p in used],
        "age_years": [float(first_age[p]) for p in used],
    })
    bnp_out = bnp[bnp["patient_id"].isin(used)].sort_values(["collected_at", "patient_id", "row"], kind="stable")
    bnp_out = pd.DataFrame({
        "result_id": [pseudo("result", f"{r}") for r in bnp_out["row"]],
        "patient_id": bnp_out["patient_id"].to_numpy(),
        "collected_at": pd.to_datetime(bnp_out["collected_at"].to_numpy()),
        "bnp_ng_l": bnp_out["bnp_ng_l"].astype(float).to_numpy(),
    })
    return Prepared(patients_out, radiographs, bnp_out, keep, excluded, int(bnp.attrs.get("censored", 0)),
                    masks=masks, segmented=segmented, masks_passed_over=passed_over)


def _masks(src: IngestSources, keep: list[Loaded], size: int, problems: list[Problem]):
    """The kept radiographs' masks from ``src.masks_csv`` (none without one); its problems go to `problems`."""
    if src.masks_csv is None:
        return {}, (), 0
    from modelling.cohort import masks_input

    path = Path(src.masks_csv)
    rows, found = masks_input.read_masks_csv(path)
    problems += found
    if found:
        return {}, (), 0
    named = {masks_input.input_name(item, src.dicom_dir): item for item in keep}
    masks, passed_over = masks_input.fitted_masks(rows, path, named, src.image_names(), size, problems)
    if passed_over:
        log.info("%s: %d mask(s) of radiographs that were excluded (not frontal, say) passed over", path, passed_over)
    named_features = set(rows["feature"])
    return masks, tuple(f for f in MASK_FEATURES if f in named_features), passed_over


def image_notes(items: list[Loaded], size: int, *, manifest: Path | None = None) -> list[str]:
    """What the kept radiographs are that a radiograph should not be, in sentences (empty when nothing):
    smaller than the bundle's ``size`` in both sides (enlarged: the detail is not in them), in colour, or with
    a header the ingest had to make a choice for (:attr:`Loaded.notes`: a date without a time, say).
    Each names up to five of them, by manifest row where there is one, else by file."""

    def named(found: list[Loaded]) -> str:
        rows = [it.row for it in found if it.row is not None]
        return (f"{manifest} row(s) " + _first_few(rows) if rows and manifest is not None
                else _first_few([it.source for it in found]))

    notes = []
    small = [it for it in items if it.shape is not None and max(it.shape) < size]
    if small:
        least = min(small, key=lambda it: max(it.shape))
        notes.append(f"{len(small)} of {len(items)} radiographs are smaller than the bundle's {size} x {size} px "
                     f"(the smallest {least.shape[0]} x {least.shape[1]}) and are enlarged, without the detail a "
                     f"radiograph of that size holds: {named(small)}")
    colour = [it for it in items if it.colour]
    if colour:
        notes.append(f"{len(colour)} of {len(items)} radiographs are in colour (photographs, or annotated "
                     f"screenshots?) and are read as the mean of their channels: {named(colour)}")
    by_note: dict[str, list[Loaded]] = {}
    for it in items:
        for kind in dict.fromkeys(_note_kind(note) for note in it.notes):  # a radiograph once per kind
            by_note.setdefault(kind, []).append(it)
    for kind, found in by_note.items():
        example = next(n for n in found[0].notes if _note_kind(n) == kind)
        notes.append(f"{len(found)} of {len(items)} radiographs: {kind}: {named(found)}"
                     + ("" if example == kind else f" (the first: {example})"))
    return notes


def _note_kind(note: str) -> str:
    """What a header note is about, without the file's own values, to count the files it concerns."""
    if "has no time anywhere" in note:
        return "a date without a time anywhere in the header, taken as 00:00 (a BNP result may pair a day off)"
    if "has no time:" in note:
        return "a date without its own time, given the time another attribute has for that day"
    if "passed over" in note:
        return "a date unreadable, out of range or in the future, passed over for the next in the header"
    if "is not a DICOM time" in note:
        return "a time that is not a DICOM time"
    if "display window" in note:
        return "a display window that cannot be used, the full range of values shown instead"
    if "Modality LUT" in note:
        return "a rescale or Modality LUT that cannot be applied, the stored values used"
    return note


def _ages(patients: pd.DataFrame, items: list[Loaded]) -> list[float]:
    """Each radiograph's age: from the birth date, else the given age at the patient's first radiograph
    (NaN when the patient's row has neither: that row's problem is reported already)."""
    by_key = patients.drop_duplicates("key").set_index("key")  # a repeated patient is reported already
    first: dict[str, pd.Timestamp] = {}
    for it in items:
        if it.acquired is not None and (it.patient_key not in first or it.acquired < first[it.patient_key]):
            first[it.patient_key] = it.acquired
    ages = []
    for it in items:
        row = by_key.loc[it.patient_key]
        if row["birth"] is not None and not pd.isna(row["birth"]):
            ages.append((it.acquired - row["birth"]).days / 365.25)
        else:
            ages.append(float(row["age_given"]) + (it.acquired - first[it.patient_key]).days / 365.25)
    return ages


def _bnp_before_birth(path: Path, patients: pd.DataFrame, bnp: pd.DataFrame) -> list[Problem]:
    """A BNP result collected before its patient's birth date, reported at the result's row (a date typo
    in one of the two files; which one is for the user to say)."""
    births = {p: b for p, b in zip(patients["patient_id"], patients["birth"]) if b is not None and not pd.isna(b)}
    problems = []
    for pid, stamp, row in zip(bnp["patient_id"], bnp["collected_at"], bnp["row"]):
        birth = births.get(pid)
        if birth is not None and stamp is not None and not pd.isna(stamp) and stamp < birth:
            problems.append(Problem(str(path), int(row) + 1, "collected_at", f"{stamp:%Y-%m-%d %H:%M}",
                                    f"before the patient's birth date {birth:%Y-%m-%d} in the patients file"))
    return problems


def _age_problems(path: Path, patients: pd.DataFrame, items: list[Loaded], ages: list[float]) -> list[Problem]:
    """A birth date after a radiograph, or an age beyond 120 (`ages`, from :func:`_ages`), reported at
    the patient's row."""
    problems = []
    by_key = patients.drop_duplicates("key").set_index("key")
    reported = set()
    for it, age in zip(items, ages):
        if it.patient_key in reported or 0 <= age <= 120 or not np.isfinite(age):  # NaN: reported by its row
            continue
        reported.add(it.patient_key)
        row = by_key.loc[it.patient_key]
        has_birth = row["birth"] is not None and not pd.isna(row["birth"])
        column = "birth_date" if has_birth else "age_years"
        value = str(row["birth"].date()) if has_birth else row["age_given"]
        when = f"{it.acquired:%Y-%m-%d %H:%M}"
        why = (f"after the patient's radiograph of {when}" if age < 0 else
               f"gives an age of {age:.0f} years at the radiograph of {when}")
        problems.append(Problem(str(path), int(row["row"]), column, value, why))
    return problems


# ---- the input formats, checked on their own (gvr validate FILE --schema ...) ----------------------

#: The files a user hands to ``gvr cohort ingest``, by the name ``gvr validate --schema`` knows them by.
INPUT_FORMATS = {
    "patients_input": "patients.csv: patient_id, sex (F/M), and birth_date or age_years",
    "bnp_input": "bnp.csv: patient_id, collected_at, bnp_ng_l (ng/L)",
    "images_manifest": "images.csv: file (relative to the CSV), patient_id, acquired_at, view",
    "masks_input": "masks.csv: image (as the manifest names it), feature, mask (relative to the CSV)",
}
#: Each input format's required columns, and the columns of which it needs at least one.
INPUT_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "patients_input": (("patient_id", "sex"), ("birth_date", "age_years")),
    "bnp_input": (("patient_id", "collected_at", "bnp_ng_l"), ()),
    "images_manifest": (("file", "patient_id", "acquired_at", "view"), ()),
    "masks_input": (("image", "feature", "mask"), ()),
}
_CHECKING_SALT = b"only-checking-no-pseudonyms-kept"


def input_formats_fitting(header) -> list[str]:
    """The input formats whose columns a header has."""
    header = set(header)
    return [name for name, (required, one_of) in INPUT_COLUMNS.items()
            if set(required) <= header and (not one_of or header & set(one_of))]


def guess_input_format(path: str | Path) -> str | None:
    """The input format of a CSV from its name and header, or None (then it is a bundle table)."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        return None
    try:
        header = set(pd.read_csv(path, nrows=0, dtype=str, encoding="utf-8").columns)
    except Exception:  # unreadable: let the bundle's schemas say so
        return None
    stem = path.stem.lower()
    # by the name, so that a header with a typo is checked against the input it was meant to be
    if stem in ("bnp", "bnp_results") and "result_id" not in header:  # result_id: the bundle's own table
        return "bnp_input"
    return {"patients": "patients_input", "images": "images_manifest", "manifest": "images_manifest",
            "masks": "masks_input"}.get(stem)


def validate_input(path: str | Path, fmt: str, *, dayfirst: bool = True) -> list[Problem]:
    """Every problem of one input file, as ``gvr cohort ingest`` would find it (file, row, column).

    Checks what the file alone can tell: columns, values, timestamps, duplicates and, for a manifest,
    that each listed image exists. Links between files (a BNP of an unknown patient, a birth date
    after a radiograph) are checked by the ingest itself.
    """
    if fmt not in INPUT_FORMATS:
        raise ValueError(f"fmt must be one of {sorted(INPUT_FORMATS)}; got {fmt!r}")
    path = Path(path)
    pseudo = Pseudonymiser(_CHECKING_SALT)
    if fmt == "patients_input":
        return read_patients(path, pseudo, dayfirst=dayfirst)[1]
    if fmt == "bnp_input":
        return read_bnp(path, None, pseudo, dayfirst=dayfirst)[1]
    if fmt == "masks_input":
        from modelling.cohort.masks_input import read_masks_csv

        return read_masks_csv(path)[1]
    df, first_row, problems = _manifest_files(path)
    if first_row is None:
        return problems
    for i, row in enumerate(df.itertuples(index=False)):
        if not row.patient_id.strip():
            problems.append(Problem(str(path), i + 1, "patient_id", row.patient_id, "missing value"))
    _timestamps(df, "acquired_at", path, problems, dayfirst=dayfirst)
    return sorted(problems, key=lambda p: (p.row or 0, p.column or ""))
