"""Validation of bundle tables with every problem reported by file, row and column.

Rows are numbered from 1 over the data rows (in a CSV file, row 1 is the line after the header).
A problem that concerns a whole column (a missing column, a wrong type in a Parquet file) has no row.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from data_schema.registry import TableSpec, get_spec, guess_schema

TABLE_SUFFIXES = (".csv", ".parquet")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
_INT_RE = re.compile(r"^[+-]?\d+$")
_ZONE_RE = re.compile(r"\d[T ]?\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}:?\d{2})$")


@dataclass(frozen=True)
class Problem:
    """One validation problem.

    Attributes
    ----------
    file : str
        The file (or ``"<frame>"`` for an in-memory table).
    row : int or None
        1-based data row; None when the problem concerns a whole column or the file.
    column : str or None
        Column name; None when the problem concerns the whole file.
    value : object
        The offending value, if there is one.
    message : str
        What is wrong, in words.
    """

    file: str
    row: int | None
    column: str | None
    value: Any
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            line = f" (line {self.row + 1})" if self.file.lower().endswith(".csv") else ""
            where.append(f"row {self.row}{line}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        text = f"{', '.join(where)}: {self.message}"
        if self.value is not None and not _is_missing(self.value):
            text += f" (value: {self.value!r})"
        return text


class TableValidationError(ValueError):
    """A table broke its schema; ``.problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:50])
        more = len(self.problems) - 50
        if more > 0:
            shown += f"\n  ... and {more} more"
        super().__init__(f"{len(self.problems)} problem(s):\n{shown}")


def _is_missing(value: Any) -> bool:
    try:
        return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT
    except TypeError:
        return False


# ---- reading files ------------------------------------------------------------------------------


def read_raw(path: str | Path) -> pd.DataFrame:
    """Read a CSV (every cell as text, only "" missing) or a Parquet file.

    Raises
    ------
    TableValidationError
        When the file does not exist, has an unknown suffix, or cannot be parsed
        (a truncated Parquet file, a CSV with ragged rows).
    """
    path = Path(path)
    name = str(path)
    if not path.is_file():
        raise TableValidationError([Problem(name, None, None, None, "file does not exist")])
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            _check_extra_fields(path)
            # not index_col: a trailing comma on every row (Excel writes them) would shift every column
            df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], index_col=False)
            # a header that ends in a comma too names an empty column: nothing in it, nothing to check
            blank = [c for c in df.columns if str(c).startswith("Unnamed: ") and df[c].isna().all()]
            return df.drop(columns=blank)
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pandas()
    except TableValidationError:
        raise
    except Exception as exc:  # the parser's message says what is broken; keep it, name the file
        kind = "CSV" if suffix == ".csv" else "Parquet"
        raise TableValidationError(
            [Problem(name, None, None, None, f"not a readable {kind} file: {exc}")]
        ) from exc
    raise TableValidationError(
        [Problem(name, None, None, None, f"unknown table format {suffix!r}; use .csv or .parquet")]
    )


def layout_problems(path: str | Path, display: str | None = None) -> list[Problem]:
    """Lines that would put every later problem at the wrong line: a blank line between rows (the reader
    skips it) and a quoted value running over several lines (a quote left open). Blank lines at the end are
    fine. Each is named by its line, where row k is line k + 1; `display` names the file in them (default: the
    path)."""
    import csv

    problems, blank, row, previous = [], [], 0, 0
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        for record in reader:
            start, previous = previous + 1, reader.line_num
            if start == 1:
                continue  # the header
            if not any(field.strip() for field in record) and len(record) <= 1:
                blank.append(start)
                continue
            row += 1
            problems += [Problem(display or str(path), line - 1, None, None, "a blank line between rows: remove it (the rows "
                                 "after it would be numbered one line off)") for line in blank]
            blank = []
            if reader.line_num > start:
                problems.append(Problem(display or str(path), row, None, None, f"a quoted value runs over lines {start}-"
                                        f"{reader.line_num} (a quote left open?)"))
                break  # later rows are numbered from here on: one is enough
    return problems


def repeated_header_names(path: str | Path) -> list[Problem]:
    """One problem per column name a CSV's header gives twice or more, named as written.

    pandas reads a repeated name as ``name`` and ``name.1``: the second column was checked under a name
    the file does not have, or silently ignored where only the first is read. Empty when the header's
    names are distinct (or the file cannot be read as text: the reader says why).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "bnp.csv"
    >>> _ = f.write_text("patient_id,bnp_ng_l,bnp_ng_l\\n1,50,99999\\n")
    >>> [(p.column, p.message) for p in repeated_header_names(f)]
    [('bnp_ng_l', 'the header names this column 2 times (columns 2 and 3): keep one')]
    """
    import csv

    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
    except (UnicodeDecodeError, csv.Error, OSError):
        return []
    seen: dict[str, list[int]] = {}
    for position, name in enumerate(header, start=1):
        if name.strip():
            seen.setdefault(name, []).append(position)
    return [Problem(str(path), None, name, None,
                    f"the header names this column {len(at)} times (columns {', '.join(map(str, at[:-1]))} and "
                    f"{at[-1]}): keep one")
            for name, at in seen.items() if len(at) > 1]


def _check_extra_fields(path: Path) -> None:
    """Rows with more values than the header has names are refused at their row (a trailing empty field,
    one comma too many, is not a value); so is a header that names a column twice."""
    import csv

    repeated = repeated_header_names(path)
    if repeated:
        raise TableValidationError(repeated)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = csv.reader(handle)
            header = next(rows, [])
            problems = [Problem(str(path), i, None, ",".join(row[len(header):]),
                                f"{len(row)} values, but the header names {len(header)} columns")
                        for i, row in enumerate((r for r in rows if r), start=1)  # pandas skips blank lines
                        if any(v.strip() for v in row[len(header):])]
    except (UnicodeDecodeError, csv.Error):
        return  # the reader says what is wrong with the file itself
    if problems:
        raise TableValidationError(problems)


def _parse_column(values: pd.Series, dtype: str, nullable: bool, file: str, column: str):
    """Parse CSV text into `dtype`, reporting each cell that does not parse."""
    problems: list[Problem] = []
    missing = values.isna()
    for idx in values.index[missing & (not nullable)]:
        problems.append(Problem(file, int(idx) + 1, column, None, "missing value"))
    text = values.where(~missing, None)
    if dtype == "str":
        return values.astype(object).where(~missing, None), problems

    def bad(idx, v, what):
        problems.append(Problem(file, int(idx) + 1, column, v, f"not {what}"))

    if dtype.startswith("datetime64"):
        # A zone would mix naive and aware times; bundle timestamps are naive local times.
        zoned = text.str.strip().str.contains(_ZONE_RE).fillna(False).astype(bool)
        for idx in text.index[zoned]:
            bad(idx, text[idx], "a timestamp without a time zone (ISO 8601 local time, e.g. 2012-03-04 05:06:07)")
        out = pd.to_datetime(text.where(~zoned), format="ISO8601", errors="coerce")
        for idx in out.index[out.isna() & ~missing & ~zoned]:
            bad(idx, text[idx], "an ISO 8601 timestamp (e.g. 2012-03-04 05:06:07)")
        return out, problems
    if dtype == "bool":
        lowered = text.str.strip().str.lower()
        out = pd.Series([True if v in _TRUE else False if v in _FALSE else None for v in lowered],
                        index=values.index, dtype=object)
        for idx in out.index[out.isna() & ~missing]:
            bad(idx, text[idx], "a boolean (true/false)")
        return (out.astype(bool) if out.notna().all() else out), problems
    if dtype == "int64":
        ok = text.str.strip().str.match(_INT_RE).fillna(False).astype(bool)
        for idx in text.index[~ok & ~missing]:
            bad(idx, text[idx], "an integer")
        out = pd.to_numeric(text.where(ok), errors="coerce")
        huge = ok & ~out.abs().le(np.iinfo(np.int64).max)  # parsed as a float: int64 would wrap it
        for idx in text.index[huge & ~missing]:
            bad(idx, text[idx], "an integer within the 64-bit range")
        ok &= ~huge
        out = out.where(ok)
        return (out.astype("int64") if ok.all() else out), problems
    if dtype == "float64":
        out = pd.to_numeric(text, errors="coerce").astype("float64")
        finite = np.isfinite(out.to_numpy(dtype=float, na_value=np.nan))
        for idx in out.index[~finite & ~missing.to_numpy()]:
            bad(idx, text[idx], "a finite number")
        return out.where(finite), problems
    raise NotImplementedError(f"no CSV parser for dtype {dtype}")


def _parse_csv_frame(raw: pd.DataFrame, schema: pa.DataFrameSchema, file: str):
    problems: list[Problem] = []
    typed = raw.copy()
    for name, column in schema.columns.items():
        if name not in raw.columns:
            continue  # reported by the schema check as a missing column
        typed[name], found = _parse_column(raw[name], str(column.dtype), column.nullable, file, name)
        problems.extend(found)
    return typed, problems


# ---- checking frames ----------------------------------------------------------------------------


def _check_text(check: str) -> str:
    rules = [
        (r"^greater_than_or_equal_to\((.*)\)$", r"must be >= \1"),
        (r"^greater_than\((.*)\)$", r"must be > \1"),
        (r"^less_than_or_equal_to\((.*)\)$", r"must be <= \1"),
        (r"^less_than\((.*)\)$", r"must be < \1"),
        (r"^in_range\((.*)\)$", r"must be in range \1"),
        (r"^isin\((.*)\)$", r"must be one of \1"),
        (r"^str_matches\((.*)\)$", r"must match the pattern \1"),
    ]
    for pattern, repl in rules:
        if re.match(pattern, check):
            return re.sub(pattern, repl, check)
    return f"fails the check {check}"


def _duplicate_keys(df: pd.DataFrame, spec: TableSpec, file: str) -> list[Problem]:
    key = list(spec.primary_key)
    if not set(key) <= set(df.columns):
        return []
    complete = df[key].notna().all(axis=1)  # a missing key cell is its own problem; the rest may still repeat
    dup = df.duplicated(key, keep=False) & complete
    if not dup.any():
        return []
    first = {}
    problems = []
    for pos, (idx, values) in enumerate(df.loc[dup, key].iterrows()):
        k = tuple(values)
        shown = ", ".join(f"{c}={v!r}" for c, v in zip(key, k))
        if k in first:
            problems.append(
                Problem(file, int(idx) + 1, key[0] if len(key) == 1 else "+".join(key), None,
                        f"duplicate primary key ({shown}); first in row {first[k]}")
            )
        else:
            first[k] = int(idx) + 1
    return problems


def check_frame(df: pd.DataFrame, spec: TableSpec, *, file: str = "<frame>") -> list[Problem]:
    """Every problem of an already-typed frame against `spec` (no exception)."""
    df = df.reset_index(drop=True)
    repeated = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
    if repeated:  # neither pandera nor Parquet can tell such columns apart
        return [Problem(file, None, c, None, "column given more than once") for c in repeated]
    problems = _duplicate_keys(df, spec, file)
    key_columns = set(spec.primary_key)
    try:
        with warnings.catch_warnings():
            # pandera's own error formatting trips a pandas FutureWarning; it is not ours to show
            warnings.simplefilter("ignore", FutureWarning)
            spec.model.validate(df, lazy=True)
        return problems
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    frame_level_seen = set()
    # with a column missing, a rule over the whole table may be judged without the columns it reads ("no
    # patient in both sets" said of a file with neither column): such failures wait until the columns are there
    columns_missing = (cases["check"].astype(str) == "column_in_dataframe").any()
    for case in cases.itertuples(index=False):
        check = str(case.check)
        column = None if _is_missing(case.column) else str(case.column)
        value = case.failure_case
        row = None if _is_missing(case.index) else int(case.index) + 1
        if check == "column_in_dataframe":
            problems.append(Problem(file, None, str(value), None, f"missing column (schema {spec.name})"))
        elif check == "column_in_schema":
            problems.append(Problem(file, None, str(value), None,
                                    f"unexpected column; schema {spec.name} has: "
                                    + ", ".join(spec.schema().columns)))
        elif check.startswith("dtype("):
            expected = check[len("dtype("):-1].strip("'")
            problems.append(Problem(file, row, column, None, f"wrong type: expected {expected}, found {value}"))
        elif check == "not_nullable":
            problems.append(Problem(file, row, column, None, "missing value"))
        elif check in ("field_uniqueness", "multiple_fields_uniqueness"):
            if column in key_columns:
                continue  # reported once per row, with the first occurrence, by _duplicate_keys
            problems.append(Problem(file, row, column, value, "duplicate value in a column that must be unique"))
        elif case.schema_context == "DataFrameSchema":
            if columns_missing or (check, row) in frame_level_seen:
                continue
            frame_level_seen.add((check, row))
            method = getattr(spec.model, check, None)
            what = (getattr(method, "__doc__", None) or check)
            for c in spec.model.to_schema().checks:
                if c.name == check and c.description:
                    what = c.description
            problems.append(Problem(file, row, None, None, f"violates: {what}"))
        elif isinstance(value, str) and value.startswith(("TypeError(", "ValueError(")):
            continue  # a consequence of a wrong dtype, already reported
        else:
            problems.append(Problem(file, row, column, value, _check_text(check)))
    return sorted(problems, key=lambda p: (p.row is not None, p.row or 0, p.column or ""))


def validate_frame(df: pd.DataFrame, schema: str | TableSpec, *, file: str = "<frame>") -> list[Problem]:
    """Problems of an in-memory table; an empty list means it is valid."""
    spec = schema if isinstance(schema, TableSpec) else get_spec(schema)
    return check_frame(df, spec, file=file)


def load_table(path: str | Path, schema: str | TableSpec | None = None, *, display: str | None = None):
    """Read a CSV or Parquet table, type it by its schema and validate it.

    Parameters
    ----------
    path : path-like
        The table file.
    schema : str or TableSpec, optional
        Schema name; by default the file's stem (``patients.csv`` -> ``patients``).
    display : str, optional
        Name to use for the file in messages (e.g. its path inside a bundle).

    Returns
    -------
    pandas.DataFrame
        The typed, valid table.

    Raises
    ------
    TableValidationError
        With every problem found, each naming file, row and column.
    """
    df, problems = _load(path, schema, display)
    if problems:
        raise TableValidationError(problems)
    return df


def validate_file(path: str | Path, schema: str | TableSpec | None = None, *, display: str | None = None):
    """Every problem of one table file (empty list: valid)."""
    try:
        return _load(path, schema, display)[1]
    except TableValidationError as exc:
        return exc.problems


def _load(path, schema, display):
    path = Path(path)
    file = display or str(path)
    if schema is None:
        spec = guess_schema(path.name)
        if spec is None:
            raise TableValidationError([Problem(file, None, None, None,
                                                "cannot tell the schema from the file name; name one")])
    else:
        spec = schema if isinstance(schema, TableSpec) else get_spec(schema)
    try:
        raw = read_raw(path)
    except TableValidationError as exc:
        raise TableValidationError([Problem(file, p.row, p.column, p.value, p.message) for p in exc.problems])
    problems: list[Problem] = []
    if path.suffix.lower() == ".csv":
        raw, problems = _parse_csv_frame(raw, spec.schema(), file)
        if problems:  # cells that failed to parse would only repeat themselves as later problems
            bad_cells = {(p.row, p.column) for p in problems}
            bad_columns = {p.column for p in problems}
            for p in check_frame(raw, spec, file=file):
                if (p.row, p.column) in bad_cells:
                    continue
                if p.column in bad_columns and p.message.startswith("wrong type"):
                    continue
                problems.append(p)
            return raw, sorted(problems, key=lambda p: (p.row is not None, p.row or 0, p.column or ""))
    return raw, check_frame(raw, spec, file=file)


def csv_round_trip_problems(data: bytes, spec: TableSpec, frame: pd.DataFrame, *, file: str) -> list[Problem]:
    """What a valid frame would lose as the CSV text `data` that holds it: values the CSV reader refuses
    (an empty text, which CSV cannot tell from a missing value; an infinite number) and timestamps finer
    than a microsecond. Empty when the text reads back as the frame."""
    raw = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, na_values=[""], index_col=False)
    _, problems = _parse_csv_frame(raw, spec.schema(), file)
    for name in frame.columns:
        stamps = frame[name]
        if pd.api.types.is_datetime64_any_dtype(stamps) and (stamps.dropna().dt.nanosecond != 0).any():
            row = int(np.flatnonzero(stamps.notna().to_numpy() & (stamps.dt.nanosecond != 0).to_numpy())[0]) + 1
            problems.append(Problem(file, row, name, str(stamps.iloc[row - 1]),
                                    "finer than a microsecond, which a CSV table does not keep"))
    return [Problem(p.file, p.row, p.column, p.value, f"cannot be written as CSV: {p.message}") for p in problems]


def is_table_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in TABLE_SUFFIXES
