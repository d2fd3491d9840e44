"""The study bundle: one directory that every stage reads and writes.

Files are written only inside a :meth:`Bundle.stage`, atomically, and recorded in ``manifest.json``
with their schema, sha256, producing stage, config hash, seed, package versions and git commit.
Reading a file checks its hash against the manifest first. A stage whose config, seed and input
hashes are unchanged since it last completed is skipped (:meth:`Bundle.run_stage`).

One process writes a bundle at a time: a stage holds an exclusive lock on ``.gvr-lock`` while it
runs, and a second writer waits for it (saying so) or, with ``GVR_BUNDLE_WAIT=0``, is refused. The
manifest is rewritten atomically (temporary file, then rename), so a reader never sees half of one.
Under ``torchrun`` only rank 0 writes.

The manifest records where the cohort came from (:attr:`Bundle.origin`): once a bundle has held
real data, no stage writes the phantom into it.

Examples
--------
>>> import tempfile, pandas as pd
>>> bundle = Bundle(tempfile.mkdtemp())
>>> patients = pd.DataFrame({"patient_id": ["p1"], "sex": ["F"], "age_years": [71.0]})
>>> with bundle.stage("cohort", config={"n": 1}, seed=0) as stage:
...     path = stage.write_table("patients", patients)
>>> bundle.read_table("patients").equals(patients)
True
>>> bundle.is_current("cohort", config={"n": 1}, seed=0)
True
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import numpy as np
import pandas as pd

from data_schema.io import (
    PARTIAL_WRITE,
    atomic_write_bytes,
    atomic_write_text,
    npy_bytes,
    npz_bytes,
    sha256_bytes,
    sha256_file,
)
from data_schema.provenance import config_hash, git_commit, package_versions
from data_schema.registry import SCHEMAS, TableSpec, get_spec
from data_schema.validate import Problem, TableValidationError, check_frame, csv_round_trip_problems, load_table

log = logging.getLogger(__name__)
# Stage start and end lines, on the channel the command line shows (modelling.progress writes there too).
progress_log = logging.getLogger("gvr.progress")


def _took(started: float) -> str:
    seconds = time.monotonic() - started
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {int(seconds % 60):02d} s"

MANIFEST = "manifest.json"
FORMAT = "gvr-chf-bundle/1"


class BundleError(Exception):
    """Base class of the bundle's errors."""


class BundlePathError(BundleError, ValueError):
    """A path that is absolute or leaves the bundle."""


class ManifestMismatchError(BundleError):
    """A file whose content no longer matches the hash recorded in the manifest."""


class NotInManifestError(BundleError, FileNotFoundError):
    """A file the manifest does not record (or that the manifest records but is gone)."""


class BundleNotFoundError(BundleError, FileNotFoundError):
    """No bundle where one was expected (the command only reads or extends an existing bundle)."""


class RealDataBundleError(BundleError):
    """A bundle that holds, or once held, real data: the phantom is never written into it."""


class ForeignFolderError(BundleError):
    """A folder that holds files but no manifest: a stage that starts a bundle does not write among them."""


class BundleBusyError(BundleError):
    """Another process is writing the bundle, and this one was told not to wait.

    ``before_work`` says whether this process had written no bundle yet (a refusal before any work, as the
    command line's exit status 2 means), or found the bundle taken between two of its stages.
    """

    before_work = True


#: Whether this process has held a bundle's write lock (see :class:`BundleBusyError`).
_WROTE_BEFORE = False


class UnfinishedStageError(BundleError):
    """A file written by a stage that failed or was stopped before it completed."""


def refuse_foreign_folder(root: str | Path) -> None:
    """Refuse to start a bundle in a folder that holds other files.

    A stage writes ``images/``, ``tables/``, ``config.yaml`` and more into its bundle, and later stages
    replace what it wrote; in a folder that is not a bundle (a home folder, a data folder, a checkout)
    they would land among, or over, the user's own files. An empty or missing folder, or one holding only
    what a stopped first run leaves (the lock and partial writes), is a new bundle.

    Raises
    ------
    ForeignFolderError
        When `root` is a folder without a manifest that holds anything else.
    """
    root = Path(root)
    if not root.is_dir() or (root / MANIFEST).is_file():
        return
    others = sorted(p.name for p in root.iterdir() if p.name != LOCK and not PARTIAL_WRITE.match(p.name))
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise ForeignFolderError(
            f"{root} is not a study bundle (no {MANIFEST}) and is not empty (it holds {shown}): a study writes "
            f"images/, tables/ and config.yaml into its folder, so it is started only in an empty or new one, "
            f"for example --out {root / 'study'}")


#: Where a bundle's cohort came from: the synthetic phantom, or a user's own radiographs.
ORIGINS = ("phantom", "real")
LOCK = ".gvr-lock"
#: Write locks this process holds, by bundle root: [open lock file, depth, the Bundle object writing, what].
#: flock belongs to an open file, so a second Bundle object of this process would not wait for the lock: it
#: is refused instead (each object holds its own copy of the manifest).
_HELD: dict[Path, list] = {}


def safe_relpath(relpath: str | Path) -> str:
    """Normalise a path inside a bundle, refusing absolute paths and ``..``.

    Raises
    ------
    BundlePathError
        For an absolute path, a drive letter, a backslash or a ``..`` segment.
    """
    text = str(relpath)
    if not text or text.startswith(("/", "\\")) or "\\" in text or (len(text) > 1 and text[1] == ":"):
        raise BundlePathError(f"path {text!r} must be relative to the bundle, with '/' separators")
    parts = PurePosixPath(text).parts
    if ".." in parts:
        raise BundlePathError(f"path {text!r} leaves the bundle ('..' is not allowed)")
    return PurePosixPath(*[p for p in parts if p != "."]).as_posix()


@dataclass(frozen=True)
class FileRecord:
    """One file of the manifest."""

    sha256: str
    bytes: int
    stage: str
    config_hash: str
    seed: int | None
    schema: str | None
    versions: dict[str, str]
    git_commit: str
    written_at: str


class Bundle:
    """A study bundle rooted at `root` (created when missing).

    Parameters
    ----------
    root : path-like
        The bundle directory.
    create : bool, default True
        Create the directory when missing. With False, a folder without a manifest raises
        :class:`BundleNotFoundError` (for commands that extend a bundle an earlier stage built).
    """

    def __init__(self, root: str | Path, *, create: bool = True):
        self.root = Path(root)
        if not create and not (self.root / MANIFEST).is_file():
            raise BundleNotFoundError(
                f"no study bundle at {self.root}: build one with `gvr reproduce --out {self.root}` "
                f"(or `gvr cohort synth` / `gvr cohort ingest` into it)")
        self.root.mkdir(parents=True, exist_ok=True)
        self._seen = None
        self._manifest = self._load_manifest()
        self._hashes: dict[str, tuple[tuple, str]] = {}
        self._lock_depth = 0

    # ---- manifest ------------------------------------------------------------------------------

    def _stat(self):
        try:
            st = (self.root / MANIFEST).stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _refresh(self) -> None:
        """Reload the manifest if another Bundle object (or process) has rewritten it."""
        if self._stat() != self._seen:
            self._manifest = self._load_manifest()

    def _load_manifest(self) -> dict:
        path = self.root / MANIFEST
        self._seen = self._stat()
        if not path.exists():
            return {"format": FORMAT, "files": {}, "stages": {}}
        try:
            manifest = json.loads(path.read_text("utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise BundleError(f"{path}: not a readable manifest ({exc})") from exc
        if manifest.get("format") != FORMAT:
            raise BundleError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
        return manifest

    def _save_manifest(self) -> None:
        atomic_write_text(self.root / MANIFEST, json.dumps(self._manifest, indent=1, sort_keys=True) + "\n")
        self._seen = self._stat()

    # ---- one writer at a time -------------------------------------------------------------------

    @contextmanager
    def writing(self, what: str) -> Iterator[None]:
        """Hold the bundle's write lock for `what` (re-entrant for this object; another Bundle object of this
        process is refused while this one writes).

        A second process waits, logging who holds the lock every 30 s; with ``GVR_BUNDLE_WAIT=0`` it
        raises :class:`BundleBusyError` instead. The manifest is reloaded once the lock is held, so
        what the previous writer recorded is never overwritten with an older copy.
        """
        key = self.root.resolve()
        held = _HELD.get(key)
        if held is not None and held[2] is not self:
            # each object keeps its own copy of the manifest: nested, one would save over the other's records
            raise BundleError(f"{self.root} is already being written by another Bundle object of this process "
                              f"({held[3]}); write through that one")
        if held is None:
            handle = open(self.root / LOCK, "a+")
            try:
                self._acquire(handle, what)
            except BaseException:
                handle.close()
                raise
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} ({what}, since {_now()})\n")
            handle.flush()
            held = _HELD[key] = [handle, 0, self, what]
            first_here = True
        else:
            first_here = False
        held[1] += 1
        outermost_here = self._lock_depth == 0
        self._lock_depth += 1
        try:  # a manifest that cannot be read must still let the lock go
            if first_here:
                self._remove_leftovers()
            if outermost_here:
                self._manifest, self._seen = self._load_manifest(), self._stat()
            yield
        finally:
            self._lock_depth -= 1
            held[1] -= 1
            if held[1] == 0:
                del _HELD[key]
                handle = held[0]
                handle.seek(0)
                handle.truncate()
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()

    def _remove_leftovers(self) -> None:
        """Partial files of writes that were killed. Stages write under the lock this one now holds; a page
        rendered into the bundle outside a stage (``gvr report --out``) does not, so a file written in the
        last minute is left for the next writer."""
        recent = time.time() - 60
        for full in _own_files(self.root):
            if PARTIAL_WRITE.match(full.name):
                try:
                    if full.stat().st_mtime > recent:
                        continue
                    full.unlink(missing_ok=True)
                    progress_log.info("%s: removed %s, left by a write that was killed", self.root, full.name)
                except OSError as exc:  # validate goes on reporting it; the write goes ahead
                    progress_log.warning("%s: could not remove %s, left by a killed write: %s", self.root, full, exc)

    def _acquire(self, handle, what: str) -> None:
        global _WROTE_BEFORE
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _WROTE_BEFORE = True
            return
        except BlockingIOError:
            pass
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        if os.environ.get("GVR_BUNDLE_WAIT", "1") == "0":
            busy = BundleBusyError(f"{self.root} is being written by {holder}; {what} was not started "
                                   "(unset GVR_BUNDLE_WAIT to wait for it)")
            busy.before_work = not _WROTE_BEFORE
            raise busy
        progress_log.info("%s is being written by %s; %s waits for it", self.root, holder, what)
        waited = time.monotonic()
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                _WROTE_BEFORE = True
                return
            except BlockingIOError:
                time.sleep(0.2)
            if time.monotonic() - waited >= 30:
                progress_log.info("%s: still waiting for %s", self.root, holder)
                waited = time.monotonic()

    # ---- where the cohort came from -------------------------------------------------------------

    @property
    def origin(self) -> str | None:
        """``"real"`` once real data were ingested (even if that ingest failed), ``"phantom"`` for a
        synthetic cohort, None for an empty bundle. Bundles written before the origin was recorded
        are judged by their tables: phantom truth means the phantom, a patients table without it
        means real data."""
        self._refresh()
        recorded = self._manifest.get("origin", {}).get("kind")
        if recorded:
            return recorded
        files = self._manifest["files"]
        if "tables/phantom_truth.parquet" in files:
            return "phantom"
        if "tables/patients.parquet" in files:
            return "real"
        return None

    def claim_origin(self, kind: str, *, by: str) -> None:
        """Record that `by` writes a cohort of `kind` into this bundle; refuse the phantom over real data.

        Raises
        ------
        RealDataBundleError
            When `kind` is ``"phantom"`` and the bundle holds or held real data.
        """
        if kind not in ORIGINS:
            raise ValueError(f"kind must be one of {list(ORIGINS)}; got {kind!r}")
        with self.writing(by):
            if kind == "phantom" and self.origin == "real":
                raise RealDataBundleError(
                    f"{self.root} holds real data (from `gvr cohort ingest`): the phantom is never written into "
                    f"it ({by} was refused). To train on it: `gvr train --bundle {self.root}`; to rebuild its "
                    f"cohort: `gvr cohort ingest ... --bundle {self.root}`; for a phantom study, use another "
                    "folder: `gvr reproduce --out study-phantom`")
            if self._manifest.get("origin", {}).get("kind") != kind or kind == "real":
                self._manifest["origin"] = {"kind": kind, "by": by, "at": _now()}
                self._save_manifest()

    def _content_matches(self, rel: str) -> bool:
        """Whether the file's sha256 is the manifest's (hashes cached per size, mtime and inode)."""
        rec = self._manifest["files"].get(rel)
        full = self.root / rel
        try:
            st = full.stat()
        except FileNotFoundError:
            return False
        if rec is None:
            return False
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
        cached = self._hashes.get(rel)
        if cached is None or cached[0] != key:
            cached = (key, sha256_file(full))
            self._hashes[rel] = cached
        return cached[1] == rec["sha256"]

    @property
    def files(self) -> dict[str, FileRecord]:
        """Every recorded file, by its path inside the bundle."""
        self._refresh()
        return {k: FileRecord(**v) for k, v in self._manifest["files"].items()}

    @property
    def stages(self) -> dict[str, dict]:
        self._refresh()
        return dict(self._manifest["stages"])

    def path(self, relpath: str | Path) -> Path:
        """The absolute path of `relpath`, refusing anything that leaves the bundle."""
        rel = safe_relpath(relpath)
        full = (self.root / rel).resolve()
        if not full.is_relative_to(self.root.resolve()):
            raise BundlePathError(f"path {str(relpath)!r} resolves outside the bundle (a symbolic link?)")
        return full

    def record(self, relpath: str) -> FileRecord:
        rel = safe_relpath(relpath)
        self._refresh()
        try:
            return FileRecord(**self._manifest["files"][rel])
        except KeyError:
            raise NotInManifestError(f"{self.root / rel}: not recorded in {self.root / MANIFEST}") from None

    def verify_file(self, relpath: str) -> Path:
        """Check a file against its manifest hash and return its path.

        Raises
        ------
        NotInManifestError
            When the manifest does not record the file or the file is gone.
        ManifestMismatchError
            When the content's sha256 differs from the manifest's.
        """
        rec = self.record(relpath)
        full = self.path(relpath)
        if not full.is_file():
            raise NotInManifestError(f"{full}: recorded in the manifest but missing on disk")
        actual = sha256_file(full)
        if actual != rec.sha256:
            raise ManifestMismatchError(
                f"{full}: content changed since stage {rec.stage!r} wrote it "
                f"(sha256 {actual[:12]}..., manifest says {rec.sha256[:12]}...); rerun that stage"
            )
        return full

    # ---- stages --------------------------------------------------------------------------------

    def is_current(self, name: str, *, config: Any, seed: int | None = None, inputs: Iterable[str] = ()) -> bool:
        """Whether stage `name` completed with this config, seed and the inputs as they are now."""
        self._refresh()
        done = self._manifest["stages"].get(name)
        if not done or done["config_hash"] != config_hash(config) or done["seed"] != seed:
            return False
        try:
            if done["inputs"] != self._input_hashes(inputs):
                return False
        except NotInManifestError:
            return False
        if not all(self._content_matches(rel) for rel in done["inputs"]):
            return False  # an input changed on disk since its stage wrote it
        for rel in done["outputs"]:
            rec = self._manifest["files"].get(rel)
            if rec is None or rec["stage"] != name or not self._content_matches(rel):
                return False  # gone, changed, or since overwritten by another stage
        return True

    def unfinished_stages(self) -> dict[str, int]:
        """Stages that recorded files but did not complete (failed or stopped), with how many files each wrote."""
        counts: dict[str, int] = {}
        for rec in self.files.values():
            counts[rec.stage] = counts.get(rec.stage, 0) + 1
        done = self.stages
        return {name: n for name, n in sorted(counts.items()) if name not in done}

    def require_finished(self, relpaths) -> None:
        """Refuse to read `relpaths` when any was written by a stage that did not complete.

        Raises
        ------
        UnfinishedStageError
            Naming the stage and what to do.
        """
        unfinished = self.unfinished_stages()
        files = self.files
        stages = sorted({files[r].stage for r in relpaths if r in files and files[r].stage in unfinished})
        if stages:
            raise UnfinishedStageError(
                f"{self.root}: stage {', '.join(map(repr, stages))} did not complete (it failed or was stopped after "
                f"writing {', '.join(str(unfinished[s]) for s in stages)} file(s)); its tables are partial: rerun it "
                "first")

    def changed_inputs(self, name: str) -> list[tuple[str, str | None]]:
        """The inputs of completed stage `name` written again (or removed) since it ran: (path, the stage that
        wrote it now, or None when it is gone)."""
        self._refresh()
        done = self._manifest["stages"].get(name) or {}
        files = self._manifest["files"]
        return [(rel, files[rel]["stage"] if rel in files else None)
                for rel, sha in sorted((done.get("inputs") or {}).items())
                if rel not in files or files[rel]["sha256"] != sha]

    def _input_hashes(self, inputs: Iterable[str]) -> dict[str, str]:
        hashes = {}
        for rel in sorted(safe_relpath(r) for r in inputs):
            hashes[rel] = self.record(rel).sha256
        return hashes

    @contextmanager
    def stage(self, name: str, *, config: Any, seed: int | None = None, inputs: Iterable[str] = ()) -> Iterator["Stage"]:
        """Open stage `name` for writing; it is recorded as complete only if the block succeeds.

        Inputs must be files already in the manifest; their hashes become part of the stage's key.
        """
        with self.writing(f"stage {name}"):
            with self._stage(name, config=config, seed=seed, inputs=list(inputs)) as stage:
                yield stage

    @contextmanager
    def _stage(self, name: str, *, config: Any, seed: int | None, inputs: list[str]) -> Iterator["Stage"]:
        input_hashes = self._input_hashes(inputs)
        earlier = self._manifest["stages"].pop(name, None)
        if earlier is not None:
            self._save_manifest()  # a stage killed half-way must not look complete on the next run
        stage = Stage(self, name, config_hash(config), seed)
        progress_log.info("stage %s: start", name)
        started = time.monotonic()
        try:
            yield stage
        except BaseException:
            if earlier is not None and not stage.written:
                # refused or stopped before it replaced any file: the earlier run's record still describes
                # the disk, so a refusal (another image size, a bad option) leaves the stage as it was
                self._manifest["stages"][name] = earlier
                progress_log.info("stage %s: failed after %s, before writing; its earlier run is kept", name,
                                  _took(started))
            else:
                progress_log.info("stage %s: failed after %s", name, _took(started))
            raise
        finally:
            self._save_manifest()  # files already written stay recorded, so the manifest matches disk
        # What an earlier run of this stage wrote and this run did not is stale: forget and remove it,
        # so that "is there a faithfulness table?" never finds a previous cohort's.
        for rel, rec in list(self._manifest["files"].items()):
            if rec["stage"] == name and rel not in stage.outputs:
                del self._manifest["files"][rel]
                (self.root / rel).unlink(missing_ok=True)
        self._manifest["stages"][name] = {
            "config_hash": stage.config_hash,
            "seed": seed,
            "inputs": input_hashes,
            "outputs": sorted(stage.outputs),
            "completed_at": _now(),
            "git_commit": git_commit(),
        }
        self._save_manifest()
        progress_log.info("stage %s: done in %s", name, _took(started))

    def run_stage(
        self,
        name: str,
        body: Callable[["Stage"], Any],
        *,
        config: Any,
        seed: int | None = None,
        inputs: Iterable[str] = (),
        force: bool = False,
    ) -> bool:
        """Run `body(stage)` unless the stage is current; return whether it ran."""
        inputs = list(inputs)
        with self.writing(f"stage {name}"):
            if not force and self.is_current(name, config=config, seed=seed, inputs=inputs):
                progress_log.info("stage %s: up to date, skipped", name)
                return False
            with self.stage(name, config=config, seed=seed, inputs=inputs) as stage:
                body(stage)
        return True

    # ---- reading -------------------------------------------------------------------------------

    def read_table(self, name_or_path: str, *, schema: str | None = None) -> pd.DataFrame:
        """Read a table by schema name (its default path) or by path, checking hash and schema."""
        if name_or_path in SCHEMAS and schema is None:
            spec = get_spec(name_or_path)
            if not spec.has_default_path:
                raise BundleError(f"{self.root}: table {spec.name} is kept once per model and method, "
                                  f"at {spec.path}; read it by its path")
            rel = spec.path
        else:
            rel = safe_relpath(name_or_path)
            rec = self.record(rel)
            spec = get_spec(schema or rec.schema) if (schema or rec.schema) else None
            if spec is None:
                raise BundleError(f"{self.root / rel}: the manifest names no schema for it; pass schema=")
        full = self.verify_file(rel)
        return load_table(full, spec, display=str(self.root / rel))

    def read_array(self, relpath: str) -> np.ndarray | dict[str, np.ndarray]:
        full = self.verify_file(relpath)
        if full.suffix == ".npz":
            with np.load(full, allow_pickle=False) as archive:
                return {k: archive[k] for k in archive.files}
        return np.load(full, allow_pickle=False)

    def read_image(self, relpath: str) -> np.ndarray:
        import imageio.v3 as iio

        return iio.imread(self.verify_file(relpath))

    def read_checkpoint(self, relpath: str, *, map_location: str = "cpu") -> dict:
        """Load a checkpoint with ``weights_only=True`` (no arbitrary code from the file)."""
        import torch

        return torch.load(self.verify_file(relpath), map_location=map_location, weights_only=True)


class Stage:
    """Writer for one stage of a bundle; obtain it from :meth:`Bundle.stage`."""

    def __init__(self, bundle: Bundle, name: str, config_hash: str, seed: int | None):
        self.bundle = bundle
        self.name = name
        self.config_hash = config_hash
        self.seed = seed
        self.outputs: set[str] = set()
        self.written = 0  # files this run wrote (adopted ones are outputs it did not write)

    def write_bytes(self, relpath: str, data: bytes, *, schema: str | None = None) -> Path:
        """Write raw bytes atomically and record them; all other writers end here."""
        rel = safe_relpath(relpath)
        if rel == MANIFEST:
            raise BundlePathError(f"{MANIFEST} is written by the bundle itself")
        full = self.bundle.path(rel)
        self.written += 1  # counted before the file is replaced: a write stopped half-way keeps no earlier record
        atomic_write_bytes(full, data)
        self.bundle._manifest["files"][rel] = {
            "sha256": sha256_bytes(data),
            "bytes": len(data),
            "stage": self.name,
            "config_hash": self.config_hash,
            "seed": self.seed,
            "schema": schema,
            "versions": package_versions(),
            "git_commit": git_commit(),
            "written_at": _now(),
        }
        self.outputs.add(rel)
        return full

    def flush(self) -> None:
        """Save the manifest now, so that a run killed later keeps what this stage wrote so far."""
        self.bundle._save_manifest()

    def adopt(self, relpath: str) -> None:
        """Count a file that an earlier, interrupted run of this stage wrote as an output.

        Raises
        ------
        BundleError
            When the file's record is not from this stage with the same config hash and seed.
        """
        rec = self.bundle.record(relpath)
        if (rec.stage, rec.config_hash, rec.seed) != (self.name, self.config_hash, self.seed):
            raise BundleError(f"{self.bundle.root / relpath}: written by stage {rec.stage!r} with another config or seed")
        self.bundle.verify_file(relpath)  # a damaged file must be rewritten, not adopted
        self.outputs.add(safe_relpath(relpath))

    def write_json(self, relpath: str, value: Any) -> Path:
        """Strict JSON (NaN and infinities become null), sorted keys, indented."""
        return self.write_bytes(relpath, (json.dumps(_finite(value), indent=1, sort_keys=True, allow_nan=False)
                                          + "\n").encode("utf-8"))

    def write_table(self, schema: str | TableSpec, df: pd.DataFrame, relpath: str | None = None) -> Path:
        """Validate `df` against `schema`, then write it as Parquet (or CSV by suffix).

        Raises
        ------
        TableValidationError
            With every problem; nothing is written.
        """
        spec = schema if isinstance(schema, TableSpec) else get_spec(schema)
        if relpath is None and not spec.has_default_path:
            raise ValueError(f"table {spec.name} is kept once per model and method, at {spec.path}; "
                             "pass its path")
        rel = safe_relpath(relpath or spec.path)
        problems = check_frame(df, spec, file=str(self.bundle.root / rel))
        if problems:
            raise TableValidationError(problems)
        frame = df.reset_index(drop=True)
        if rel.endswith(".csv"):
            data = frame.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S.%f", lineterminator="\n").encode()
            problems = csv_round_trip_problems(data, spec, frame, file=str(self.bundle.root / rel))
            if problems:  # a table written must read back as it was
                raise TableValidationError(problems)
        elif rel.endswith(".parquet"):
            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False, engine="pyarrow")
            data = buffer.getvalue()
        else:
            raise BundlePathError(f"table path {rel!r} must end in .parquet or .csv")
        return self.write_bytes(rel, data, schema=spec.name)

    def write_array(self, relpath: str, array: np.ndarray | dict[str, np.ndarray]) -> Path:
        """An ``.npy`` array, or an ``.npz`` of several named arrays."""
        if relpath.endswith(".npz"):
            if not isinstance(array, dict):
                raise TypeError(f"{relpath}: an .npz needs a dict of named arrays")
            return self.write_bytes(relpath, npz_bytes(array))
        if not relpath.endswith(".npy"):
            raise BundlePathError(f"array path {relpath!r} must end in .npy or .npz")
        return self.write_bytes(relpath, npy_bytes(array))

    def write_image(self, relpath: str, image: np.ndarray) -> Path:
        """A PNG of a 2-D (grayscale) or H x W x 3/4 uint8 or uint16 array."""
        import imageio.v3 as iio

        if not relpath.endswith(".png"):
            raise BundlePathError(f"image path {relpath!r} must end in .png")
        image = np.asarray(image)
        if image.dtype not in (np.uint8, np.uint16):
            raise TypeError(f"{relpath}: images are uint8 or uint16, got {image.dtype}")
        return self.write_bytes(relpath, iio.imwrite("<bytes>", image, extension=".png"))

    def write_checkpoint(self, relpath: str, state: dict) -> Path:
        """A ``torch.save`` state dict; it must load with ``weights_only=True``."""
        import torch

        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
        try:  # refuse to record what a reader could not load safely
            torch.load(io.BytesIO(data), weights_only=True)
        except Exception as exc:
            raise TypeError(f"{relpath}: checkpoint holds objects that weights_only=True refuses: {exc}") from exc
        return self.write_bytes(relpath, data)


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---- validating a whole bundle ---------------------------------------------------------------------


def validate_bundle(root: str | Path) -> list[Problem]:
    """Every problem of a bundle: hashes, missing files, table schemas and dangling paths."""
    from data_schema.registry import guess_schema
    from data_schema.validate import validate_file

    root = Path(root)
    problems: list[Problem] = []
    if not root.is_dir():
        return [Problem(str(root), None, None, None, "not a directory")]
    try:
        bundle = Bundle(root)
    except BundleError as exc:
        # the problem names the file; the message need not name it again
        return [Problem(str(root / MANIFEST), None, None, None, str(exc).removeprefix(f"{root / MANIFEST}: "))]
    if not (root / MANIFEST).exists():
        problems.append(Problem(str(root), None, None, None, f"no {MANIFEST}: not a study bundle"))
    recorded = bundle.files
    stages = bundle.stages
    unfinished = bundle.unfinished_stages()
    for name, n in unfinished.items():
        problems.append(Problem(str(root / MANIFEST), None, None, None,
                                f"stage {name!r} did not complete (it wrote {n} file(s), then failed or was "
                                "stopped): rerun it"))
    for name in sorted(stages):
        changed = bundle.changed_inputs(name)
        if changed:
            problems.append(Problem(str(root / MANIFEST), None, None, None, out_of_date(name, changed, root)))
    for rel, rec in sorted(recorded.items()):
        try:
            full = bundle.verify_file(rel)
        except BundleError as exc:
            problems.append(Problem(str(root / rel), None, None, None, str(exc).split(": ", 1)[-1]))
            continue
        if rec.schema:
            found = validate_file(full, rec.schema, display=str(root / rel))
            problems.extend(found)
            if not found and rec.stage not in unfinished:  # a stopped stage's paths dangle: said once above
                problems.extend(_dangling_paths(bundle, rel, rec.schema))
    for full in _own_files(root):
        rel = full.relative_to(root).as_posix()
        if rel in recorded or rel == MANIFEST:
            continue
        if PARTIAL_WRITE.match(full.name):
            problems.append(Problem(str(full), None, None, None, "a write that was killed left this partial file: "
                                    "remove it (nothing refers to it)"))
        elif guess_schema(full.name):
            problems.append(Problem(str(full), None, None, None, f"table not recorded in {MANIFEST}"))
            problems.extend(validate_file(full, display=str(full)))
    return problems


def out_of_date(name: str, changed: list[tuple[str, str | None]], root: str | Path = "BUNDLE") -> str:
    """What :meth:`Bundle.changed_inputs` found for stage `name`, in one sentence."""
    rel, now = changed[0]
    what = f"{rel} is gone" if now is None else f"{rel} was written again by stage {now!r}"
    more = f" (and {len(changed) - 1} more of its inputs)" if len(changed) > 1 else ""
    return (f"stage {name!r} is out of date: its input {what} after it ran{more}, so what it wrote may not match "
            f"the bundle's data: rerun it (`gvr reproduce {root}`)")


def _own_files(root: Path) -> list[Path]:
    """The files under `root`, leaving out bundles nested in it (the shortcut benchmark keeps whole study
    bundles in its work folder; each has its own manifest and is validated on its own)."""
    out = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not (here / d / MANIFEST).is_file())
        out += [here / f for f in sorted(files)]
    return out


def _dangling_paths(bundle: Bundle, rel: str, schema: str) -> list[Problem]:
    df = load_table(bundle.root / rel, schema)
    problems = []
    for column in [c for c in df.columns if c.endswith("_path")]:
        for idx, value in df[column].items():
            if value is None or (isinstance(value, float) and np.isnan(value)):
                continue
            if not (bundle.root / value).is_file():
                problems.append(Problem(str(bundle.root / rel), int(idx) + 1, column, value,
                                        "file does not exist in the bundle"))
    return problems
