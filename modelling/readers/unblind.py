"""Unblinding: readers' responses plus the packet's key give the ``reader_assessments`` table.

A responses file (written by :mod:`modelling.readers.server`, or by hand) is a CSV with the columns
:data:`RESPONSE_COLUMNS`: one row per reader, round, blinded id and feature, ``present`` true or
false, ``answered_at`` an ISO 8601 time. :func:`unblind` reads any number of them (one per reader
and round, or combined), checks them against the packet and its key, and joins the key's gvr id,
regime and patient id on. Nothing is guessed: an unknown blinded id, a feature the packet does not
score, a duplicate answer, a reader without all of their rounds, a missing column or an empty file
is refused, every problem naming its file, row and column.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

import pandas as pd

from data_schema import Problem, TableValidationError, load_table, validate_frame
from data_schema.validate import layout_problems
from modelling.readers.answers import NO_CHF, contradictory, unanswered
from modelling.readers.packets import Packet, PacketError, load_packet

log = logging.getLogger(__name__)

RESPONSE_COLUMNS = ("reader", "round", "blinded_id", "feature", "present", "answered_at")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
_KEY_COLUMNS = ["reader", "round", "blinded_id", "feature"]


class ResponsesError(TableValidationError):
    """Responses that cannot be unblinded as they are; ``.problems`` names file, row and column."""


def read_responses(path: str | Path, packet: Packet, *, display: str | None = None,
                   allow_empty: bool = False) -> pd.DataFrame:
    """Read one responses CSV and check each cell against the packet.

    Parameters
    ----------
    path : path-like
        The responses file.
    packet : Packet
        The packet the responses belong to.
    display : str, optional
        Name of the file in messages (default: the path).
    allow_empty : bool
        Accept a header with no rows (the reading page starts from one); a 0-byte file is always refused.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`RESPONSE_COLUMNS` (round int, present bool, answered_at datetime) plus
        ``file`` and ``row`` (1-based data row) for later messages.

    Raises
    ------
    ResponsesError
        Listing every problem: a missing or empty file, a missing or unexpected column, a reader,
        round, blinded id or feature the packet does not have, a value that is not true/false, a
        time that is not ISO 8601.
    """
    path = Path(path)
    file = display or str(path)
    if not path.is_file():
        raise ResponsesError([Problem(file, None, None, None, "file does not exist")])
    if path.stat().st_size == 0:
        raise ResponsesError([Problem(file, None, None, None,
                                      "empty file: no header and no answers; give the reader's saved responses")])
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except Exception as exc:  # the parser's message says what is broken
        raise ResponsesError([Problem(file, None, None, None, f"not a readable CSV file: {exc}")]) from exc
    problems = [Problem(file, None, c, None, f"missing column; a responses file has {list(RESPONSE_COLUMNS)}")
                for c in RESPONSE_COLUMNS if c not in raw.columns]
    # a blank line between rows is skipped by the reader, and would put every later problem a line off
    problems += layout_problems(path, file)
    problems += [Problem(file, None, c, None, f"unexpected column; a responses file has {list(RESPONSE_COLUMNS)}")
                 for c in raw.columns if c not in RESPONSE_COLUMNS]
    if problems:
        raise ResponsesError(problems)
    if raw.empty and not allow_empty:
        raise ResponsesError([Problem(file, None, None, None, "no answers (a header only)")])

    ids, features = set(packet.ids), set(packet.features)
    rounds, present, times = [], [], []
    for i, rec in enumerate(raw.itertuples(index=False), start=1):
        def bad(column, value, message):
            problems.append(Problem(file, i, column, value, message))

        for column in RESPONSE_COLUMNS:
            if pd.isna(getattr(rec, column)):
                bad(column, None, "missing value")
        if not pd.isna(rec.reader) and rec.reader not in packet.readers:
            bad("reader", rec.reader, f"not a reader of this packet ({list(packet.readers)})")
        k = None
        if not pd.isna(rec.round):
            try:
                k = int(rec.round)
            except ValueError:
                bad("round", rec.round, "not an integer")
            else:
                if not 1 <= k <= packet.rounds:
                    bad("round", rec.round, f"not a round of this packet (1 to {packet.rounds})")
        rounds.append(k)
        if not pd.isna(rec.blinded_id) and rec.blinded_id not in ids:
            bad("blinded_id", rec.blinded_id, "unknown blinded id: not in this packet (mistyped?)")
        if not pd.isna(rec.feature) and rec.feature not in features:
            bad("feature", rec.feature, f"not a feature of this packet ({list(packet.features)})")
        value = None
        if not pd.isna(rec.present):
            text = rec.present.strip().lower()
            if text in _TRUE:
                value = True
            elif text in _FALSE:
                value = False
            else:
                bad("present", rec.present, "not true or false (true/false, yes/no or 1/0)")
        present.append(value)
        stamp = pd.NaT
        if not pd.isna(rec.answered_at):
            try:
                stamp = pd.Timestamp(rec.answered_at)
            except (ValueError, TypeError):
                bad("answered_at", rec.answered_at, "not an ISO 8601 time")
            else:
                if stamp.tzinfo is not None:
                    stamp = stamp.tz_convert(None)
        times.append(stamp)
    if problems:
        raise ResponsesError(problems)
    out = raw.loc[:, list(RESPONSE_COLUMNS)].copy()
    out["round"] = pd.Series(rounds, dtype="int64")
    out["present"] = pd.Series(present, dtype=bool)
    out["answered_at"] = pd.to_datetime(pd.Series(times, dtype="datetime64[ns]"))
    out["file"] = file
    out["row"] = range(1, len(out) + 1)
    return out


def _resolve_duplicates(answers: pd.DataFrame, *, latest: bool) -> tuple[pd.DataFrame, list[Problem]]:
    dup = answers.duplicated(_KEY_COLUMNS, keep=False)
    if not dup.any():
        return answers, []
    problems: list[Problem] = []
    if not latest:
        first = {}
        for rec in answers[dup].itertuples(index=False):
            k = (rec.reader, rec.round, rec.blinded_id, rec.feature)
            if k not in first:
                first[k] = (rec.file, rec.row)
                continue
            problems.append(Problem(rec.file, rec.row, "blinded_id", rec.blinded_id,
                                    f"duplicate answer for reader {rec.reader}, round {rec.round}, feature "
                                    f"{rec.feature} (first at {first[k][0]} row {first[k][1]}); "
                                    "remove one, or keep the newest with --latest"))
        return answers, problems
    ordered = answers.sort_values([*_KEY_COLUMNS, "answered_at"], kind="stable")
    newest = ordered.groupby(_KEY_COLUMNS, sort=False)["answered_at"].transform("max")
    top = ordered[ordered["answered_at"] == newest]
    tied = top[top.duplicated(_KEY_COLUMNS, keep=False)]
    for _, group in tied.groupby(_KEY_COLUMNS, sort=False):
        if group["present"].nunique() > 1:
            rec = group.iloc[-1]
            problems.append(Problem(rec["file"], int(rec["row"]), "answered_at", str(rec["answered_at"]),
                                    f"conflicting answers with the same time for reader {rec['reader']}, "
                                    f"round {rec['round']}, id {rec['blinded_id']}, feature {rec['feature']}; "
                                    "the newest cannot be told: remove one"))
    kept = top.drop_duplicates(_KEY_COLUMNS, keep="last")
    dropped = len(answers) - len(kept)
    log.info("latest: kept the newest answer, dropped %d older duplicate(s)", dropped)
    return kept, problems


def _contradictions(answers: pd.DataFrame, features) -> list[Problem]:
    """Answers the reading server would have refused: "No CHF features" together with a CHF feature, or,
    where every CHF feature and "No CHF features" were offered, none marked."""
    problems = []
    for (reader, k, blinded), group in answers.groupby(["reader", "round", "blinded_id"], sort=True):
        if group["feature"].duplicated().any():  # a duplicate is its own problem; which answer counts is not known
            continue
        present = dict(zip(group["feature"], group["present"].astype(bool)))
        why = contradictory(present) or (unanswered(present, features) if set(group["feature"]) >= set(features)
                                         else "")  # an incomplete answer is reported as such, not as empty
        if why:
            rec = group[group["feature"] == NO_CHF].iloc[-1]
            problems.append(Problem(rec["file"], int(rec["row"]), "present", str(rec["present"]),
                                    f"reader {reader}, round {k}, id {blinded}: {why}"))
    return problems


def _completeness(answers: pd.DataFrame, packet: Packet, files: str) -> list[Problem]:
    problems = []
    expected = len(packet.ids) * len(packet.features)
    for reader in packet.readers:
        for k in range(1, packet.rounds + 1):
            got = answers[(answers["reader"] == reader) & (answers["round"] == k)]
            if got.empty:
                problems.append(Problem(files, None, None, None,
                                        f"reader {reader} has no answers for round {k}; give that round's "
                                        "responses file (answers are never guessed)"))
                continue
            if len(got) < expected:
                have = set(zip(got["blinded_id"], got["feature"]))
                missing = [(b, f) for b in packet.ids for f in packet.features if (b, f) not in have]
                shown = ", ".join(f"{b}/{f}" for b, f in missing[:5]) + (" ..." if len(missing) > 5 else "")
                problems.append(Problem(files, None, None, None,
                                        f"reader {reader}, round {k} is incomplete: {len(missing)} of {expected} "
                                        f"answers missing ({shown}); finish the reading first"))
    return problems


def unblind(packet_dir: str | Path, responses_paths: Iterable[str | Path], key_path: str | Path, *,
            latest: bool = False) -> pd.DataFrame:
    """Join readers' responses to the packet's key: the ``reader_assessments`` table.

    Parameters
    ----------
    packet_dir : path-like
        The reading packet.
    responses_paths : iterable of path-like
        Responses CSVs (any split by reader and round).
    key_path : path-like
        The packet's key CSV (``reading_key`` schema), kept outside the packet.
    latest : bool
        For duplicate answers to one (reader, round, blinded id, feature), keep the newest by
        ``answered_at`` instead of refusing them.

    Returns
    -------
    pandas.DataFrame
        ``reader_assessments``: reader, round, gvr_id, regime, patient_id, feature, present,
        simulated (False), sorted by reader, round, gvr_id and feature.

    Raises
    ------
    ResponsesError
        Every problem of every file, each naming file, row and column where there is one; also a
        reader without answers for every round, id and feature of the packet.
    TableValidationError
        When the key breaks its schema.
    PacketError
        When the packet is unreadable, or the key belongs to another packet.
    """
    packet = load_packet(packet_dir)
    key = load_table(key_path, "reading_key")
    if set(key["blinded_id"]) != set(packet.ids):
        raise PacketError(f"{key_path}: its blinded ids are not those of the packet {packet.root}; "
                          "give the key written with this packet")
    paths = [Path(p) for p in responses_paths]
    if not paths:
        raise ResponsesError([Problem("<responses>", None, None, None, "no responses file given")])
    given: dict[Path, Path] = {}
    for path in paths:  # the same file twice is every one of its answers twice: say that, once
        if path.resolve() in given:
            raise ResponsesError([Problem(str(path), None, None, None,
                                          f"given twice (also as {given[path.resolve()]}): give each file once")])
        given[path.resolve()] = path
    frames, problems = [], []
    for path in paths:
        try:
            frames.append(read_responses(path, packet))
        except ResponsesError as exc:
            problems += exc.problems
    if problems:
        raise ResponsesError(problems)
    answers = pd.concat(frames, ignore_index=True)
    answers, problems = _resolve_duplicates(answers, latest=latest)
    # what is missing is missing from all of them together, not from the first file
    problems += _completeness(answers, packet, f"the responses given ({', '.join(str(p) for p in paths)})")
    problems += _contradictions(answers, packet.features)
    if problems:
        raise ResponsesError(problems)

    keyed = key.set_index("blinded_id")
    table = pd.DataFrame({
        "reader": answers["reader"].to_numpy(),
        "round": answers["round"].astype("int64").to_numpy(),
        "gvr_id": answers["blinded_id"].map(keyed["gvr_id"]).to_numpy(),
        "regime": answers["blinded_id"].map(keyed["regime"]).to_numpy(),
        "patient_id": answers["blinded_id"].map(keyed["patient_id"]).to_numpy(),
        "feature": answers["feature"].to_numpy(),
        "present": answers["present"].astype(bool).to_numpy(),
        "simulated": False,
    })
    table = table.sort_values(["reader", "round", "gvr_id", "feature"], ignore_index=True)
    problems = validate_frame(table, "reader_assessments", file="<unblinded>")
    if problems:
        raise TableValidationError(problems)
    return table


def mismatches_with_study(table: pd.DataFrame, gvr_index: pd.DataFrame, radiographs: pd.DataFrame) -> list[str]:
    """Why the unblinded `table` does not belong to the study whose ``gvr_index`` and ``radiographs`` are
    given (empty when it does): every GVR read must be one of the study's, of the same regime and patient.

    >>> index = pd.DataFrame({"gvr_id": ["g1"], "regime": ["correct"], "image_id": ["i1"]})
    >>> people = pd.DataFrame({"image_id": ["i1"], "patient_id": ["p1"]})
    >>> mismatches_with_study(pd.DataFrame({"gvr_id": ["g2"], "regime": ["correct"], "patient_id": ["p1"]}), index, people)
    ['1 GVR(s) read are not in its GVR index (g2)']
    """
    read = table.drop_duplicates("gvr_id").set_index("gvr_id")
    index = gvr_index.set_index("gvr_id")
    unknown = [g for g in read.index if g not in index.index]
    out = [f"{len(unknown)} GVR(s) read are not in its GVR index ({', '.join(unknown[:5])})"] if unknown else []
    known = read.drop(index=unknown)
    patient = index["image_id"].map(radiographs.set_index("image_id")["patient_id"])
    differ = [g for g in known.index
              if known.at[g, "regime"] != index.at[g, "regime"] or known.at[g, "patient_id"] != patient.get(g)]
    if differ:
        out.append(f"{len(differ)} GVR(s) read have another regime or patient there ({', '.join(differ[:5])})")
    return out


def pictures_not_from_study(packet: Packet, key: pd.DataFrame, gvr_index: pd.DataFrame, read_image) -> list[str]:
    """The packet's blinded ids whose overlay is not the study's picture of the GVR the key names (empty when
    every one is): the same ids come out of another bundle of the same seed and config, or of this one after
    its GVRs were made again, while the readers saw other pictures. `read_image` reads a bundle path."""
    import imageio.v3 as iio
    import numpy as np

    paths = gvr_index.set_index("gvr_id")["overlay_path"]
    differ = []
    for blinded, gvr_id in zip(key["blinded_id"], key["gvr_id"]):
        seen = iio.imread(packet.image_path(blinded, "overlay"))
        if gvr_id not in paths.index or not np.array_equal(seen, read_image(paths[gvr_id])):
            differ.append(blinded)
    return differ
