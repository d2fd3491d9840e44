"""The ``gvr`` command line: thin commands over the libraries.

Imports of heavy libraries (torch, R) happen inside the commands that need them, so that
``gvr validate`` and ``gvr --help`` start quickly.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer

from modelling.cli import bundle_argument



def _commands(help: str, **kwargs) -> typer.Typer:
    """A command group with plain help: Rich's panels print a flag as taking a value (``--quiet <bool>``) and
    keep the docstrings' line breaks, where plain help shows ``--quiet`` and rewraps the text."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None, **kwargs)


app = _commands("GVR-CHF: Generative Visual Rationales for heart failure on chest radiographs.",
                add_completion=False, pretty_exceptions_enable=False)
schema_app = _commands("The bundle's table schemas.")
config_app = _commands("Study configs (configs/*.yaml).")
app.add_typer(schema_app, name="schema")
cohort_app = _commands("The cohort: the synthetic phantom (default) or real data.")
app.add_typer(config_app, name="config")
app.add_typer(cohort_app, name="cohort")
readers_app = _commands("The reader study: blinded packets, the reading page, unblinding, simulated readers.")
app.add_typer(readers_app, name="readers")
benchmark_app = _commands("Benchmarks of the explanations against the phantom's ground truth.")
app.add_typer(benchmark_app, name="benchmark")


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one line of the log: its kind and its text, without the source line."""
    text = " ".join(str(message).split())
    print(f"warning: {category.__name__}: {text}", file=file or sys.stderr, flush=True)


def configure_logging(*, verbose: bool = False, quiet: bool = False) -> None:
    """Progress and stage lines on stderr with the time; other libraries' logs at WARNING (INFO with -v)."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", force=True)
    progress_log = logging.getLogger("gvr.progress")
    progress_log.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", datefmt="%H:%M:%S"))
    progress_log.addHandler(handler)
    progress_log.setLevel(logging.WARNING if quiet else logging.INFO)
    progress_log.propagate = False
    for handler in logging.getLogger().handlers:  # basicConfig's
        handler.setFormatter(_OwnFindingsFirst("%(levelname)s %(name)s: %(message)s"))
    warnings.showwarning = _one_line_warning


class _OwnFindingsFirst(logging.Formatter):
    """The package's own log lines as a user reads a finding, ``warning: <message>`` on one line (as the
    warnings are shown); other libraries' with their level and name."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name == "modelling" or record.name.startswith(("modelling.", "analysis.", "data_schema.")):
            line = f"{record.levelname.lower()}: {' '.join(record.getMessage().split())}"
            return line + ("\n" + self.formatException(record.exc_info) if record.exc_info else "")
        return super().format(record)


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log details from every library."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or stage lines."),
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an error."),
) -> None:
    configure_logging(verbose=verbose, quiet=quiet)


def _study_config(config: Optional[str], bundle: Path):
    """--config when given; else the config the bundle was built with (its config.yaml); else the default.

    A config.yaml beside no manifest is not a bundle's: some other folder's file, which the command refuses
    to write among (``refuse_foreign_folder``) rather than read as a study's config."""
    from data_schema.bundle import MANIFEST
    from modelling.config import load_config

    if config is not None:
        return load_config(config)
    stored = Path(bundle) / "config.yaml"
    ours = stored.is_file() and (Path(bundle) / MANIFEST).is_file()
    return load_config(str(stored) if ours else "default")


_fail = bundle_argument.fail


def _fitting_schemas(path: Path) -> str:
    """The schemas and ingest formats whose columns a table's header has, in words (all, when none fit)."""
    from data_schema import SCHEMAS
    from modelling.cohort.ingest import INPUT_FORMATS

    fits = _fits(path)
    if fits:
        return f"its columns fit: {', '.join(fits)}"
    return f"schemas: {', '.join(sorted(SCHEMAS))}; input formats: {', '.join(sorted(INPUT_FORMATS))}"


def _fits(path: Path) -> list[str]:
    """The schemas and ingest formats whose columns a table's header has."""
    import pandas as pd

    from data_schema import SCHEMAS
    from modelling.cohort.ingest import input_formats_fitting

    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            header = set(pq.read_schema(path).names)
        else:
            header = set(pd.read_csv(path, nrows=0, dtype=str, encoding="utf-8").columns)
    except Exception:  # noqa: BLE001 - an unreadable header fits nothing; every name is listed
        header = set()
    fits = [name for name, spec in sorted(SCHEMAS.items()) if set(spec.schema().columns) <= header]
    return fits + input_formats_fitting(header)


@app.command()
def validate(
    path: Optional[Path] = typer.Argument(None, show_default=False, metavar="PATH", help=(
        f"A table (.csv or .parquet) or a bundle directory. Default: {bundle_argument.DEFAULT}.")),
    bundle: Optional[list[Path]] = bundle_argument.option(what="Or the bundle directory"),
    schema: Optional[str] = typer.Option(None, "--schema", "-s", help=(
        "Schema of a single table, or an input format of `gvr cohort ingest` (patients_input, bnp_input, "
        "images_manifest, masks_input); default: from the file's name and header.")),
    month_first: bool = typer.Option(False, help="Read slashed dates of an input file as MM/DD/YYYY."),
) -> None:
    """Validate a table or a whole bundle; print every problem with file, row and column.

    Exit code 0 when valid, 1 when any problem is found, 2 for a usage error.
    """
    from data_schema import UnknownSchemaError, get_spec, validate_bundle, validate_file
    from data_schema.registry import guess_schema

    if bundle and path is not None and not path.is_dir():
        _fail(f"{path} is a table; --bundle names a bundle directory: give one or the other")
    path = path if path is not None and not path.is_dir() else bundle_argument.resolve(path, bundle)
    if not path.exists():
        _fail(f"{path}: no such file or directory")
    if not path.is_dir() and path.suffix.lower() not in (".csv", ".parquet"):  # a usage error, before any reading
        _fail(f"{path}: not a table; give a .csv or .parquet file, or a bundle directory")
    if path.is_dir():
        if schema is not None:
            _fail("--schema applies to a single table, not to a bundle directory")
        if not (path / "manifest.json").is_file():
            _fail(f"{path}: not a study bundle (no manifest.json); give a bundle directory or a table")
        problems = validate_bundle(path)
        what = f"bundle {path}"
    else:
        from modelling.cohort.ingest import INPUT_FORMATS, guess_input_format, validate_input

        fmt = schema if schema in INPUT_FORMATS else (guess_input_format(path) if schema is None else None)
        if schema is None and fmt is None and guess_schema(path.name) is None:
            fits = _fits(path)
            if len(fits) == 1:  # the name says nothing, the header one thing: take it, and say so
                typer.echo(f"{path}: taken as {fits[0]} from its columns (give --schema to name another)", err=True)
                fmt, schema = (fits[0], None) if fits[0] in INPUT_FORMATS else (None, fits[0])
        if fmt is not None:  # a file for `gvr cohort ingest`, checked as the ingest checks it
            problems = validate_input(path, fmt, dayfirst=not month_first)
            what = f"{fmt.replace('_', ' ')} {path}"
        else:
            try:
                spec = get_spec(schema) if schema else None
            except UnknownSchemaError as exc:
                _fail(f"{exc}; input formats of `gvr cohort ingest`: {', '.join(sorted(INPUT_FORMATS))}")
            if spec is None and guess_schema(path.name) is None:  # a usage error: say which schemas would fit
                _fail(f"{path}: cannot tell the schema from the file name; name one with --schema "
                      f"({_fitting_schemas(path)})")
            problems = validate_file(path, spec)
            what = f"table {path}"
    for problem in problems:
        typer.echo(str(problem))
    if problems:
        typer.echo(f"{len(problems)} problem(s) in {what}", err=True)
        raise typer.Exit(1)
    typer.echo(f"ok: {what} is valid" + (" (each image's name and size are checked by the ingest, against the "
                                          "radiographs)" if what.startswith("masks input") else ""))


@schema_app.command("list")
def schema_list() -> None:
    """List the bundle's tables: name, default path, primary key and description."""
    from data_schema import SCHEMAS
    from modelling.cohort.ingest import INPUT_FORMATS

    for spec in SCHEMAS.values():
        typer.echo(f"{spec.name:<20} {spec.path:<46} key: {', '.join(spec.primary_key)}")
        typer.echo(f"{'':<20} {spec.description.replace('``', '')}")  # the docstrings' markup, not the terminal's
    typer.echo("\ninput formats of `gvr cohort ingest` (gvr validate FILE --schema NAME):")
    for name, text in INPUT_FORMATS.items():
        typer.echo(f"{name:<20} {text}")


@schema_app.command("export")
def schema_export(
    check: bool = typer.Option(False, "--check", help="Only compare; exit 1 when the committed JSON differs."),
    out: Optional[Path] = typer.Option(None, help="Directory (default: data_schema/json)."),
) -> None:
    """Write the Frictionless Table Schemas (JSON) of every table, or check they are current."""
    from data_schema import SCHEMAS
    from data_schema.frictionless import JSON_DIR, render, write_all

    directory = out or JSON_DIR
    if directory.exists() and not directory.is_dir():
        _fail(f"{directory}: a file, not a directory")
    if check:
        stale = [spec.name for spec in SCHEMAS.values()
                 if not (directory / f"{spec.name}.schema.json").is_file()
                 or (directory / f"{spec.name}.schema.json").read_text("utf-8") != render(spec)]
        if stale:
            again = "gvr schema export" + (f" --out {directory}" if out is not None else "")
            typer.echo(f"out of date in {directory}: {', '.join(stale)}; run `{again}`", err=True)
            raise typer.Exit(1)
        typer.echo(f"ok: {len(SCHEMAS)} schemas in {directory} are current")
        return
    for path in write_all(directory):
        typer.echo(str(path))


@config_app.command("show")
def config_show(config: str = typer.Argument("default", metavar="CONFIG",
                                              help="Profile name or YAML path.")) -> None:
    """Load, validate and print a config with every default filled in."""
    import yaml

    from modelling.config import ConfigError, config_to_dict, load_config

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        _fail(str(exc))
    typer.echo(yaml.safe_dump(config_to_dict(cfg), sort_keys=False).rstrip())


def _num(value, spec: str) -> str:
    """A summary number, or "-" where it is undefined (an SD of one patient: NaN when made, null once stored)."""
    import math

    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _print_summary(info: dict) -> None:
    typer.echo(f"{'set':<11} {'radiographs':>11} {'patients':>9} {'female %':>9} {'age mean (SD)':>14} "
               f"{'BNP median (IQR)':>22} {'< ' + format(info['threshold_ng_l'], 'g') + ' ng/L':>12}")
    for name, s in info["sets"].items():
        if not s["patients"]:
            typer.echo(f"{name:<11} {0:>11} {0:>9}")
            continue
        bnp = (f"{_num(s['bnp_median'], '.0f')} ({_num(s['bnp_q1'], '.0f')}-{_num(s['bnp_q3'], '.0f')})"
               if "bnp_median" in s else "-")
        below = f"{100 * s['below_threshold'] / s['radiographs']:z.1f} %" if "below_threshold" in s else "-"
        typer.echo(f"{name:<11} {s['radiographs']:>11,} {s['patients']:>9,} {100 * s['female'] / s['patients']:>8.1f}% "
                   f"{_num(s['age_mean'], '>7.1f')} ({_num(s['age_sd'], '.1f')}) {bnp:>22} {below:>12}")
    if info.get("oracle_auc") is not None:
        typer.echo(f"oracle AUC at {info['threshold_ng_l']:g} ng/L (noiseless BNP model, test split): {info['oracle_auc']:z.3f}")


@cohort_app.command("synth")
def cohort_synth(
    config: Optional[str] = typer.Option(None, help=(
        "Profile name (tiny, default, paper) or YAML path (default: the bundle's config.yaml, else the default "
        "profile).")),
    bundle_at: Optional[Path] = bundle_argument.positional("The study bundle directory"),
    out: Optional[list[Path]] = bundle_argument.option("--out", what="The study bundle directory"),
    workers: Optional[int] = typer.Option(None, min=1, help="Rendering processes (default: one per core)."),
    force: bool = typer.Option(False, help="Rebuild even when the bundle's cohort is current."),
) -> None:
    """Synthesize the phantom cohort into a bundle and print its Table 1 summary.

    Writes the radiographs (images/), the phantom's masks (masks/), the cohort's tables (tables/: patients,
    radiographs, BNP results, pairing, splits, the phantom's truth), cohort/summary.json, and config.yaml, the
    config every later command uses by default.
    """
    import json

    from modelling.config import ConfigError
    from modelling.stages.cohort import build_cohort
    from modelling.stages.study_config import record_config

    out = bundle_argument.resolve(bundle_at, out)

    try:
        cfg = _study_config(config, out)
    except ConfigError as exc:
        _fail(str(exc))
    bundle = build_cohort(cfg, out, workers=workers, force=force)
    record_config(bundle, cfg, quiet=True)  # later commands without --config use it
    _print_summary(json.loads(bundle.verify_file("cohort/summary.json").read_text()))
    typer.echo(f"bundle: {bundle.root}  (contact sheet: {bundle.root / 'cohort/contact_sheet.png'})")


@cohort_app.command("ingest")
def cohort_ingest(
    patients: Path = typer.Option(..., exists=True, dir_okay=False, help="patients.csv: patient_id, sex, birth_date or age_years."),
    bnp: Path = typer.Option(..., exists=True, dir_okay=False, help="bnp.csv: patient_id, collected_at, bnp_ng_l."),
    dicom: Optional[Path] = typer.Option(None, exists=True, file_okay=False, help="Folder of DICOM radiographs."),
    manifest: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="CSV of PNG/JPEG files: file, patient_id, acquired_at, view."),
    masks: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help=(
        "CSV of segmentations: image (as the manifest names it, or its path in the DICOM folder), feature "
        "(heart, effusion, opacity, ...), mask (an image of the radiograph's size); heart, effusion and opacity "
        "are required. The audit then reads the models by region, as on the phantom.")),
    salt_file: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="Secret salt for pseudonyms (or set GVR_SALT)."),
    config: Optional[str] = typer.Option(None, help=(
        "Profile name (tiny, default, paper) or YAML path (image size, pairing window, split; default: the "
        "bundle's config.yaml when it has one, else the default profile).")),
    bundle_at: Optional[Path] = bundle_argument.positional("The study bundle directory"),
    out: Optional[list[Path]] = bundle_argument.option("--out", what="The study bundle directory"),
    month_first: bool = typer.Option(False, help="Read slashed dates as MM/DD/YYYY instead of DD/MM/YYYY."),
    secondary_capture: bool = typer.Option(False, help=(
        "Also keep grayscale DICOM secondary captures (Modality SC or OT), e.g. digitised films; by default "
        "only CR and DX are radiographs.")),
    force: bool = typer.Option(False, help="Rebuild even when the bundle's cohort is current."),
) -> None:
    """Ingest real radiographs, BNP results and patients into a de-identified bundle.

    Every input is checked before the bundle is touched; a refused ingest leaves it as it was.
    """
    import json

    from modelling.cohort.ingest import IngestError, IngestSources, Pseudonymiser
    from modelling.config import ConfigError
    from modelling.stages.ingest import build_from_real_data

    out = bundle_argument.resolve(bundle_at, out)

    salt = _salt(salt_file)
    if (dicom is None) == (manifest is None):
        _fail("give exactly one of --dicom DIR (DICOM files) or --manifest CSV (PNG/JPEG files)")
    try:
        cfg = _study_config(config, out)
        pseudo = Pseudonymiser(salt)
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))
    src = IngestSources(patients_csv=patients, bnp_csv=bnp, dicom_dir=dicom, manifest_csv=manifest,
                        dayfirst=not month_first, secondary_capture=secondary_capture, masks_csv=masks)
    try:
        bundle, info = build_from_real_data(cfg, out, src, pseudo, force=force)
    except IngestError as exc:  # anything else is a fault of ours: main() shows it, with --debug its traceback
        for problem in exc.problems:
            typer.echo(str(problem))
        typer.echo(f"{len(exc.problems)} problem(s); nothing was written", err=True)
        raise typer.Exit(1)
    if info is None:
        typer.echo(f"the cohort in {bundle.root} is current (same inputs, salt and config); use --force to rebuild")
        info = json.loads(bundle.verify_file("cohort/summary.json").read_text())
    for item in info.get("excluded_files", []):
        typer.echo(f"excluded: {item['file']}: {item['reason']}")
    _print_summary(info)
    typer.echo(f"ingested {info['radiographs']:,} radiographs of {info['patients']:,} patients "
               f"({info['excluded']:,} file(s) excluded); {info['paired']:,} paired with a BNP result")
    if info.get("masks"):
        m = info["masks"]
        typer.echo(f"masks of {m['radiographs']:,} radiograph(s) ({', '.join(m['segmented'])} segmented)"
                   + (f"; {m['passed_over']} of excluded radiographs passed over" if m["passed_over"] else ""))
    typer.echo(f"bundle: {bundle.root}")


def _set_threads(cfg) -> None:
    import torch

    if cfg.runtime.num_threads:
        torch.set_num_threads(cfg.runtime.num_threads)


def _salt(salt_file: Optional[Path]) -> bytes:
    """The pseudonyms' secret: --salt-file or GVR_SALT (two different ones refused)."""
    import os

    if salt_file is not None and os.environ.get("GVR_SALT") and \
            salt_file.read_bytes().strip() != os.environ["GVR_SALT"].encode():
        _fail(f"two different salts: --salt-file {salt_file} and GVR_SALT; give one (a different salt gives "
              "different pseudonyms, and a bundle ingested again with it no longer matches)")
    if salt_file is not None:
        return salt_file.read_bytes().strip()
    if os.environ.get("GVR_SALT"):
        return os.environ["GVR_SALT"].encode()
    _fail("a secret salt is needed to pseudonymise identifiers: --salt-file PATH or GVR_SALT "
          "(at least 16 bytes, kept outside the bundle; e.g. `head -c 32 /dev/urandom | base64 > salt`)")


@cohort_app.command("key")
def cohort_key(
    dicom: Optional[Path] = typer.Option(None, exists=True, file_okay=False, help="Folder of DICOM radiographs."),
    manifest: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="CSV of PNG/JPEG files: file, patient_id, acquired_at, view."),
    salt_file: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="The salt the ingest used (or set GVR_SALT)."),
    out: Path = typer.Option(..., "--out", dir_okay=False, help="The key CSV to write: image_id, file."),
) -> None:
    """Which input file each radiograph's image_id is, to find the radiographs the GVRs explain.

    A re-identification key: keep it with the salt, outside the bundle (a path inside a bundle is refused).
    """
    from data_schema.io import atomic_write_text
    from modelling.cohort.ingest import IngestError, Pseudonymiser, image_key_table

    salt = _salt(salt_file)
    if (dicom is None) == (manifest is None):
        _fail("give exactly one of --dicom DIR (DICOM files) or --manifest CSV (PNG/JPEG files)")
    inside = next((d for d in out.resolve().parents if (d / "manifest.json").is_file()), None)
    if inside is not None:
        _fail(f"{out}: inside the study bundle {inside}; the key re-identifies its radiographs, keep it outside")
    try:
        pseudo = Pseudonymiser(salt)
    except ValueError as exc:
        _fail(str(exc))
    try:
        table = image_key_table(dicom, manifest, pseudo)
    except IngestError:
        raise  # its problems listed by row and column
    except ValueError as exc:  # nothing found
        _fail(f"{exc}; no key was written", code=1)
    text = table.to_csv(index=False, lineterminator="\n")
    # another salt or other radiographs: the key there may be the only copy still needed
    if out.exists() and out.read_text("utf-8", "replace") != text:
        _fail(f"{out} exists and holds another key; remove it or give another --out (a key is the only way back "
              "from image_id to the file, so none is replaced)")
    atomic_write_text(out, text)
    # a DICOM folder's key names every image in it, laterals too: the ingest decides which are radiographs
    what = "DICOM images" if dicom else "radiographs"
    typer.echo(f"key: {out}  ({len(table):,} {what}; keep it with the salt, outside the bundle)")


@app.command()
def train(
    config: Optional[str] = typer.Option(None, help=(
        "Profile name or YAML path (default: the bundle's config.yaml, else the default profile).")),
    bundle_at: Optional[Path] = bundle_argument.positional("The study bundle, its cohort built first if missing"),
    bundle: Optional[list[Path]] = bundle_argument.option("--out", what="The study bundle, its cohort built first if missing"),
    force: bool = typer.Option(False, help="Retrain even when the bundle's models are current."),
) -> None:
    """Train the decoder, encoder and BNP predictors; print the AUCs and the targets.

    Writes checkpoints/ (decoder, encoder, each predictor), arrays/latents.npy with tables/latents_index,
    tables/predictions.parquet, and train/ (summary.json with the targets, samples.png, reconstructions.png,
    decoder_samples.npz, ctr_real_vs_generated.csv). Progress (iterations/s, losses, ETA) goes to stderr;
    checkpoints are written every runtime.checkpoint_every iterations, and a killed run resumes from the
    last one.
    """
    import json

    from modelling.config import ConfigError
    from modelling.stages.cohort import build_cohort
    from modelling.stages.study_config import record_config
    from modelling.stages.train import build_training

    bundle = bundle_argument.resolve(bundle_at, bundle)

    if config is None and not Path(bundle).exists():  # a mistyped bundle would get a phantom study of the default profile
        _fail(f"no bundle at {bundle}: give the path of an existing bundle, or --config to build a phantom cohort "
              "there first")
    try:
        cfg = _study_config(config, bundle)
    except ConfigError as exc:
        _fail(str(exc))
    _set_threads(cfg)
    rank = _init_distributed(cfg)
    if rank == 0 and "cohort" not in _stages(bundle):
        record_config(build_cohort(cfg, bundle), cfg, quiet=True)
    _barrier()
    try:
        built = build_training(cfg, bundle, force=force)
    except ValueError as exc:
        _fail(str(exc))
    if rank == 0:
        _print_training(json.loads(built.verify_file("train/summary.json").read_text()))


def _init_distributed(cfg) -> int:
    """Join torchrun's process group when there is one (its backend for ``runtime.device``); return this
    process's rank."""
    from modelling.nets.distributed import init_from_environment

    return init_from_environment(cfg.runtime.device)


def _barrier() -> None:
    from modelling.nets.distributed import barrier

    barrier()


def _stages(root: Path) -> dict:
    from data_schema import Bundle

    return Bundle(root).stages if (root / "manifest.json").exists() else {}


def _print_training(summary: dict) -> None:
    typer.echo(f"{'model / role':<28} {'AUC':>6} {'95% CI (DeLong)':>18}")
    for key, value in summary["auc"].items():
        if value["auc"] is None:
            typer.echo(f"{key:<28} {'-':>6}  {value['reason']}")
        else:
            typer.echo(f"{key:<28} {value['auc']:>6.3f} {value['ci_low']:>8.3f}-{value['ci_high']:z.3f}")
    if summary.get("oracle_auc") is not None:
        typer.echo(f"oracle AUC (noiseless BNP model, test split): {summary['oracle_auc']:z.3f}")
    rec = summary["reconstruction"]
    typer.echo(f"held-out reconstruction: MSE {rec['mse']:z.4f}, PSNR {rec['psnr_db']:z.1f} dB "
               f"({rec['held_out_radiographs']} radiographs)")
    kept = summary.get("disease_kept")
    if kept and kept.get("median_r") is not None:
        typer.echo(f"disease kept by the decoder (phantom): decoded vs true change of {kept['radiographs']} held-out "
                   f"radiographs, median r {kept['median_r']:z.2f} (IQR {kept['q1_r']:z.2f} to {kept['q3_r']:z.2f})")
        ratio = kept.get("cardiothoracic_ratio") or {}
        shrinks = ratio.get("lower_without_disease", {})
        if ratio.get("measured_on_both") and shrinks.get("reconstructions", {}).get("share") is not None:
            typer.echo(f"  cardiothoracic ratio, reconstruction vs radiograph: median difference "
                       f"{ratio['median_difference']:+z.3f} over {ratio['measured_on_both']}; a heart the truth shrinks "
                       f"is measured smaller in {shrinks['reconstructions']['share']:z.0%} of reconstructions "
                       f"against {shrinks['radiographs']['share']:z.0%} of radiographs")
        fluid = (kept.get("effusion") or {}).get("larger_without_effusion", {})
        if fluid.get("reconstructions", {}).get("share") is not None:
            typer.echo(f"  effusion: removing it is measured as more aerated lung in {fluid['reconstructions']['share']:z.0%} "
                       f"of {fluid['reconstructions']['measured']} reconstructions against "
                       f"{fluid['radiographs']['share']:z.0%} of radiographs")
    ratio = summary.get("samples", {}).get("cardiothoracic_ratio")
    if ratio and ratio["real"].get("measured") and ratio["generated"].get("measured"):
        real, gen = ratio["real"], ratio["generated"]
        typer.echo(f"cardiothoracic ratio (thresholding), real vs decoder samples: median "
                   f"{real['median']:z.2f} (IQR {real['q1']:z.2f} to {real['q3']:z.2f}) vs {gen['median']:z.2f} "
                   f"(IQR {gen['q1']:z.2f} to {gen['q3']:z.2f}); measured {real['measured']}/{real['n']} vs "
                   f"{gen['measured']}/{gen['n']}; Kolmogorov-Smirnov p = {ratio['ks_p_value']:.3g}")
    sampler = summary.get("samples", {}).get("sampler")
    if sampler and sampler.get("without_two_lungs") is not None:
        cycles = sampler.get("cycles")
        line = (f"decoder samples ({sampler['name']} sampler"
                + (f", decoded and encoded again {cycles} time(s)" if cycles else "") + ") without two separable lungs: "
                + f"{sampler['without_two_lungs']:z.1%}")
        if "prior_without_two_lungs" in sampler:
            line += f" (from the N(0, I) prior: {sampler['prior_without_two_lungs']:z.1%})"
        if sampler.get("replay_ratio") is not None:
            line += f"; replay ratio {sampler['replay_ratio']:z.2f} (1: as new as unseen radiographs' codes)"
        typer.echo(line)
        if sampler.get("collapsed"):
            typer.echo("  warning: the two-stage sampler learned only the codes' mean; its samples are all alike")
    from modelling.stages.train import development_checks

    _print_targets(development_checks(summary))


@app.command()
def explain(
    bundle_at: Optional[Path] = bundle_argument.positional("The study bundle (trained)"),
    bundle: Optional[list[Path]] = bundle_argument.option(what="The study bundle (trained)"),
    config: Optional[str] = typer.Option(None, help=(
        "Profile name or YAML path (default: the bundle's config.yaml, else the default profile).")),
    model: Optional[list[str]] = typer.Option(None, "--model", help="Model id(s) (default: every MLP)."),
    images: Optional[list[str]] = typer.Option(None, "--images", help="Radiograph id(s) to explain (default: drawn)."),
    image_model: Optional[Path] = typer.Option(None, "--image-model", help=(
        "Explain your own image model instead: an exported program (torch.export.save, dynamic batch) "
        "or a TorchScript file (torch.jit.save).")),
    image_model_factory: Optional[str] = typer.Option(None, "--image-model-factory", help=(
        "Or module:function building the model, with --weights (a state dict, loaded weights_only).")),
    weights: Optional[Path] = typer.Option(None, "--weights", help="The state dict for --image-model-factory."),
    image_model_spec: Optional[Path] = typer.Option(None, "--image-model-spec", help=(
        "YAML: input_size, output (log_bnp, bnp_ng_l, logit, probability), threshold, scaling, mean, sd, "
        "output_index (default: the model file's name with .yaml).")),
    method: str = typer.Option("direct", help="direct (through the image model) or surrogate (a ridge fit to it)."),
    name: Optional[str] = typer.Option(None, help="The image model's name in the bundle (default: the stem of the model file, or of the factory's module)."),
    margin: Optional[float] = typer.Option(None, min=0.0, help=(
        "How far past the threshold to move, on the log or logit scale (8-bit storage can undo a bare crossing; "
        "default 0.05).")),
    force: bool = typer.Option(False, help="Redo even when the explanations are current."),
) -> None:
    """Write GVRs and inverse GVRs (original, diseased, healthy, overlay PNGs, a movie) and their index.

    Each GVR in gvr/<model>-<image>/, indexed in tables/gvr_index.parquet. With --image-model (or
    --image-model-factory and --weights), explain your own image model instead: GVRs moved through it
    (direct) or along a surrogate, each checked by the model itself.
    """
    from modelling.config import ConfigError
    from modelling.stages.explain import UnknownModelError, build_explanations

    bundle = bundle_argument.resolve(bundle_at, bundle, must_exist=True)
    if image_model is not None or image_model_factory is not None:
        study_only = [flag for flag, given in (("--model", bool(model)), ("--images", bool(images))) if given]
        if study_only:  # they were ignored: the image model's own highest-scored test radiographs were explained
            _fail(f"{' and '.join(study_only)} {'applies' if len(study_only) == 1 else 'apply'} to the study's own "
                  "MLPs only; an image model explains the test radiographs it scores highest, as many as "
                  "readers.per_model in the config")
        _explain_image_model(bundle, config, image_model, image_model_factory, weights, image_model_spec, method,
                             name, margin, force)
        return
    only_for_image_models = [flag for flag, given in (("--method", method != "direct"), ("--name", name is not None),
                                                      ("--weights", weights is not None),
                                                      ("--image-model-spec", image_model_spec is not None),
                                                      ("--margin", margin is not None)) if given]
    if only_for_image_models:
        verb = "applies" if len(only_for_image_models) == 1 else "apply"
        _fail(f"{', '.join(only_for_image_models)} {verb} to --image-model or --image-model-factory only; the "
              "study's own GVRs take their settings from the config (gvr: in the profile)")
    try:
        cfg = _study_config(config, bundle)
    except ConfigError as exc:
        _fail(str(exc))
    rank = _init_distributed(cfg)  # under torchrun the radiographs are shared out between processes
    try:
        built, info = build_explanations(cfg, bundle, model_ids=model or None, images=images or None, force=force)
    except (ConfigError, ValueError, UnknownModelError) as exc:
        _fail(str(exc))
    if rank != 0:
        return
    index = built.read_table("gvr_index")
    gvr = index[index["kind"] == "gvr"]
    for model_id, rows in gvr.groupby("model_id"):
        typer.echo(f"{model_id}: {len(rows)} GVRs, {rows['reached'].mean():z.0%} reached {cfg.cohort.bnp_threshold_ng_l:g} ng/L, "
                   f"median {rows['steps'].median():z.0f} steps, median latent distance {rows['latent_distance'].median():z.2f}")
    typer.echo(f"{(index['kind'] == 'inverse').sum()} inverse GVR frames; index: {built.root / 'tables/gvr_index.parquet'}")
    if info and info["skipped"]:
        typer.echo(f"{info['skipped']} radiograph(s) skipped: see {built.root / 'gvr/skipped.csv'}")


def _explain_image_model(bundle, config, path, factory, weights, spec_path, method, name, margin, force) -> None:
    import re

    from modelling.config import ConfigError
    from modelling.explain.image_model import (ImageModelError, ImageModelSpec, factory_source, load_factory,
                                               load_model_file)
    from modelling.explain.rationale import METHODS
    from modelling.stages.image_explain import build_image_rationales

    if method not in METHODS:
        _fail(f"--method must be one of {', '.join(METHODS)}; got {method!r}")
    if (path is None) == (factory is None):
        _fail("give either --image-model FILE (an exported program or TorchScript) or --image-model-factory "
              "module:function --weights FILE")
    try:
        if path is not None:
            model, data = load_model_file(path), path.read_bytes()
            spec_path = spec_path or path.with_suffix(".yaml")
        else:
            if weights is None:
                _fail("--image-model-factory needs --weights FILE (a state dict)")
            if spec_path is None:
                _fail("--image-model-factory needs --image-model-spec FILE (input size, output, threshold)")
            model = load_factory(factory, weights)
            # the factory's own module file is part of what the rationales depend on: an edited forward() is
            # another model, and its rationales must not be kept as current
            data = factory.encode() + factory_source(factory) + weights.read_bytes()
        spec = ImageModelSpec.from_yaml(spec_path)
        # the name defaults to the file's stem: the model file's, or the factory's module's
        label = name or (path.stem if path is not None else factory.partition(":")[0].rpartition(".")[2])
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", label):
            _fail(f"--name must be letters, digits, '.', '_' or '-'; got {label!r}")
        cfg = _study_config(config, bundle)
        built, info = build_image_rationales(cfg, bundle, model, spec, name=label, method=method, model_bytes=data,
                                             force=force, **({} if margin is None else {"margin": margin}))
    except ImageModelError as exc:
        where = str(path if path is not None else factory)
        said = str(exc)  # the model's refusals say what is wrong; which model and spec they are about, here
        _fail(said if where in said or (spec_path is not None and str(spec_path) in said)
              else f"{where} (spec {spec_path}): {said}", code=1 if getattr(exc, "after_work", False) else 2)
    except (ConfigError, ValueError) as exc:  # the config's or the bundle's: not the model's
        _fail(str(exc))
    import json

    from modelling.stages.image_explain import folder

    info = json.loads(built.verify_file(f"{folder(label, method)}/summary.json").read_text())
    typer.echo(f"{label}: scored {info['scored']:,} radiographs, {info['positive_in_test']} of the test split at or "
               f"above {spec.threshold:g}; explained {info['explained']} ({method})")
    if not info["explained"]:  # a GVR explains a radiograph the model calls diseased: none here
        typer.echo(f"  nothing to explain: no test radiograph scored at or above the threshold; check the spec's "
                   f"output ({spec.output}) and threshold ({spec.threshold:g}) in {spec.source or spec_path}")
    if info.get("surrogate_fidelity"):
        f = info["surrogate_fidelity"]
        auc = "-" if f["auc"] is None else f"{f['auc']:z.3f}"
        typer.echo(f"  surrogate fidelity on {f['n_held_out']} held-out radiographs: R2 {f['r2']:z.3f}, AUC against "
                   f"the model's decisions {auc}, agreement {f['agreement']:z.0%}")
    if info["explained"]:
        past = info.get("already_past") or 0
        moved = info["explained"] - past
        reached = "-" if info["reached"] is None else f"{info['reached']:z.0%}"
        typer.echo(f"  reached the threshold {reached} of {moved} moved"
                   + (f" ({past} not moved: the model already read their reconstruction past it)" if past else "")
                   + f"; confirmed by the model on the stored healthy reconstruction (valid) {info['valid']:z.0%}")
    typer.echo(f"  {built.root / folder(label, method)}")


@app.command()
def baselines(
    bundle_at: Optional[Path] = bundle_argument.positional("The study bundle (with GVRs)"),
    bundle: Optional[list[Path]] = bundle_argument.option(what="The study bundle (with GVRs)"),
    config: Optional[str] = typer.Option(None, help=(
        "Profile name or YAML path (default: the bundle's config.yaml, else the default profile).")),
    force: bool = typer.Option(False, help="Redo even when the maps are current."),
) -> None:
    """Occlusion, integrated gradients, LIME and Grad-CAM beside each GVR; faithfulness and audit.

    Writes one panel per GVR (baselines/<model>-<image>.png), tables/faithfulness.parquet (each method
    against the masks) and baselines/audit.json (the audit's decision per model, printed).
    """
    from modelling.config import ConfigError
    from modelling.stages.baselines import build_baselines

    bundle = bundle_argument.resolve(bundle_at, bundle, must_exist=True)
    try:
        cfg = _study_config(config, bundle)
        built, _ = build_baselines(cfg, bundle, force=force)
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(f"panels: {built.root / 'baselines'}")
    if (built.root / "baselines/audit.json").exists():
        _print_audit(built)


@app.command()
def fidelity(
    bundle_at: Optional[Path] = bundle_argument.positional("A phantom study bundle (with GVRs)"),
    bundle: Optional[list[Path]] = bundle_argument.option(what="A phantom study bundle (with GVRs)"),
    config: Optional[str] = typer.Option(None, help=(
        "Profile name or YAML path (default: the bundle's config.yaml, else the default profile).")),
    force: bool = typer.Option(False, help="Redo even when the measures are current."),
) -> None:
    """GVRs against the phantom's truth: true counterfactuals, each model's reliance by intervention.

    Writes each GVR's true counterfactuals beside it (gvr/<model>-<image>/counterfactual.png and
    target_counterfactual.png), arrays/true_change.npy and target_change.npy, tables/gvr_truth.parquet,
    tables/model_reliance.parquet and fidelity/summary.json (the issue's targets, printed).
    """
    from modelling.config import ConfigError
    from modelling.stages.fidelity import build_fidelity

    bundle = bundle_argument.resolve(bundle_at, bundle, must_exist=True)
    try:
        cfg = _study_config(config, bundle)
        built, _ = build_fidelity(cfg, bundle, force=force)
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))
    _print_fidelity(built)


def _print_fidelity(bundle) -> None:
    import json

    summary = json.loads(bundle.verify_file("fidelity/summary.json").read_text())
    if not summary["models"]:
        typer.echo(f"no ground truth to judge the GVRs against ({summary.get('reason', 'no GVRs')})")
        return
    reliance = bundle.read_table("model_reliance")
    for model_id, m in summary["models"].items():
        rho = "-" if m["rank_agreement"] is None else f"{m['rank_agreement']:z.2f}"
        if m.get("rank_agreement_ci"):
            rho += " (95% bootstrap interval over its radiographs {:z.2f} to {:z.2f})".format(*m["rank_agreement_ci"])
        target = "-" if m.get("median_pixel_r_target") is None else f"{m['median_pixel_r_target']:z.2f}"
        ctr_small = ("" if m.get("ctr_small_effusion_measured") is None else
                     f" ({_share_of(m.get('ctr_lower_small_effusion'), m['ctr_small_effusion_measured'], 'without a large effusion', dash=False)})")
        typer.echo(f"{model_id}: {m['gvrs']} GVRs; pixel r with the true change median {m['median_pixel_r']:z.2f} "
                   f"(IQR {m['q1_pixel_r']:z.2f} to {m['q3_pixel_r']:z.2f}), with the target counterfactual {target}, "
                   f"with the model's own change {m['median_model_change_r']:z.2f}; measured cardiothoracic ratio lower "
                   f"in {_share_of(m['ctr_lower'], m['ctr_measured_with_cardiomegaly'], 'with cardiomegaly')}"
                   f"{ctr_small}; measured effusion smaller in "
                   f"{_share_of(m.get('effusion_cleared'), m.get('effusion_measured', 0), 'with an effusion')}; "
                   f"rank agreement with reliance {rho}")
        rows = reliance[reliance["model_id"] == model_id]
        typer.echo("  " + ", ".join(f"{r.feature} {r.mean_drop:+z.2f} (GVR {r.gvr_mean_coefficient:z.2f})"
                                    for r in rows.itertuples()))
    typer.echo("  (fall in predicted log BNP by intervention; GVR: mean coefficient of that feature's true change)")
    for model_id, p in (summary.get("positioning") or {}).items():
        r2 = "-" if p["median_r2_interventions"] is None else f"{p['median_r2_interventions']:z.2f}"
        r2p = "-" if p["median_r2_with_positioning"] is None else f"{p['median_r2_with_positioning']:z.2f}"
        typer.echo(f"{model_id}: positioned neutrally (not an intervention above), the prediction moves "
                   f"{p['mean_absolute_fall']:z.2f} log BNP on average (mean fall {p['mean_fall']:+z.2f}); GVR median "
                   f"coefficient {p['gvr_median_coefficient']:z.2f}; the interventions explain a median R2 of {r2} "
                   f"of a GVR's change ({r2p} with positioning)")
    for model_id, rep in (summary.get("representation") or {}).items():
        typer.echo(f"{model_id}: as the encoder and decoder show each intervention, r with its true change and its "
                   "cost to a pattern move (squared code length): "
                   + ", ".join(f"{f} {'-' if row['shown_r'] is None else format(row['shown_r'], 'z.2f')} "
                               f"({row['squared_code_length']:z.1f})" for f, row in rep["features"].items()))
        per_cost, shown = (("-" if rep[key] is None else f"{rep[key]:z.2f}")
                           for key in ("rank_agreement_per_cost", "rank_agreement_on_shown"))
        typer.echo(f"  rank agreement of the GVRs with reliance over cost {per_cost}; with reliance, on the shown "
                   f"changes instead of the true ones {shown}")
    from analysis.fidelity_targets import fidelity_checks

    _print_targets(fidelity_checks(summary))


def _share_of(share: float | None, measured: int, group: str, *, dash: bool = True) -> str:
    """ "95% of the 40 with cardiomegaly", or "- (none with cardiomegaly measured)" where nothing could be measured
    (it printed "- of 0", which reads as a result); without `dash`, "none with cardiomegaly measured".

    Examples
    --------
    >>> _share_of(0.95, 40, "with cardiomegaly")
    '95% of the 40 with cardiomegaly'
    >>> _share_of(None, 0, "with an effusion")
    '- (none with an effusion measured)'
    """
    if not measured or share is None:
        return f"- (none {group} measured)" if dash else f"none {group} measured"
    return f"{share:z.0%} of the {measured} {group}"


def _print_targets(checks: dict[str, dict]) -> None:
    for name, target in checks.items():
        if not target.get("measurable", True):  # nothing to measure it on: neither met nor missed
            typer.echo(f"[not measurable] {name}")
        else:
            shown = "undefined" if target["value"] is None else f"{target['value']:z.3f}"
            typer.echo(f"[{'met' if target['met'] else 'NOT met'}] {name}: {shown}")


def _print_audit(bundle) -> None:
    import json

    result = json.loads(bundle.verify_file("baselines/audit.json").read_text())
    for model_id, a in result.items():
        rule = f"rule: flagged when {a['rule']}" if a["decision"] != "undecided" else a["rule"]
        basis = "no evidence" if a["basis"] == "none" else a["basis"]
        typer.echo(f"{model_id}: {a['decision'].upper()} on {basis} ({rule}); {a['gvrs']} GVRs, reached "
                   f"{a['reached_rate']:z.0%}, median latent distance {a['median_latent_distance']:z.2f}")
        for line in a["used"]:
            typer.echo(f"  used: {line}")
        for line in a["not_checked"]:
            typer.echo(f"  not checked: {line}")
        for line in a["caveats"]:
            typer.echo(f"  caveat: {line}")
        for line in a.get("reported") or []:
            typer.echo(f"  reported: {line}")
        unshortened = (a.get("region_effects_as_explained") or {}).get("outside_share")
        if unshortened is not None:
            typer.echo(f"  reported: the region response's share outside the disease and device masks on the "
                       f"bundle's own GVRs (not deciding): {unshortened:z.2f}")
        if a.get("reliance"):
            truth = a["reliance"]
            share = "-" if truth["share"] is None else f"{truth['share']:z.2f}"
            verdict = "relies mostly on non-disease features" if truth["flagged"] else "relies mostly on disease"
            agree = {True: "agrees", False: "DISAGREES", None: "-"}[a["agrees_with_reliance"]]
            typer.echo(f"  truth by intervention: non-disease reliance share {share}: {verdict}; the audit {agree}")
        if a.get("gvr_mean_shares"):
            shares = ", ".join(f"{k.removeprefix('share_')} {v:z.0%}" for k, v in a["gvr_mean_shares"].items())
            typer.echo(f"  GVR change by mask: {shares}")
        for method, m in sorted((a.get("by_method") or {}).items()):
            pointing = "-" if m["pointing_rate"] is None else f"{m['pointing_rate']:z.0%}"
            iou = "-" if m["iou_top"] is None else f"{m['iou_top']:z.2f}"
            nd = "-" if m["non_disease_share"] is None else f"{m['non_disease_share']:z.2f}"
            mass = "-" if m.get("relevance_mass") is None else f"{m['relevance_mass']:z.2f}"
            typer.echo(f"  {method:<22} pointing game {pointing:>5}  top-k IoU {iou}  relevance mass {mass}  "
                       f"non-disease share by area {nd}")
    from analysis.fidelity_targets import baseline_checks

    _print_targets(baseline_checks(result))


@app.command()
def audit(
    bundle_at: Optional[Path] = bundle_argument.positional(),
    bundle: Optional[list[Path]] = bundle_argument.option(),
) -> None:
    """Does each model rely mostly on what is not disease? The decision from its GVRs, with the evidence used.

    The rule is in modelling/explain/audit.py: with masks, the share of the model's response to its GVRs'
    change that comes from outside the disease and device masks > 0.5, on GVRs shortened by
    audit.sparse_steps (their overlays in baselines/audit/); without, the cardiothoracic ratio and effusion
    measured on the reconstructions.
    On the phantom it is checked against the model's reliance measured by intervention.
    """
    from data_schema import Bundle, BundleNotFoundError

    from data_schema.bundle import out_of_date

    bundle = bundle_argument.resolve(bundle_at, bundle, must_exist=True)
    try:
        b = Bundle(bundle, create=False)  # a folder without a manifest is not a study, not one without its audit
    except BundleNotFoundError as exc:
        _fail(str(exc))
    if "baselines/audit.json" not in b.files:
        _fail(f"{bundle}: no audit yet; run `gvr baselines {bundle}` after `gvr explain {bundle}`")
    changed = b.changed_inputs("baselines")
    if changed:  # the decisions below are of models or GVRs the bundle no longer holds
        typer.echo(f"warning: {out_of_date('baselines', changed, bundle)}", err=True)
    _print_audit(b)


@benchmark_app.command("shortcuts")
def benchmark_shortcuts(
    config: str = typer.Option("default", help="Profile name (tiny, default, paper) or YAML path."),
    out: Path = typer.Option(Path("shortcuts"), "--out", help="Output directory (resumed when it exists)."),
    strengths: Optional[str] = typer.Option(None, help=(
        "Shares of the positives that carry the marker, e.g. 0,0.5,1 (default: the config's shortcuts.strengths).")),
    seeds: Optional[int] = typer.Option(None, min=1, help=(
        "Seeds: the config's seed, then the next ones (default: the config's shortcuts.seeds).")),
    negative_share: Optional[float] = typer.Option(None, help=(
        "Share of the negatives that carry the marker (default: the config's shortcuts.negative_share).")),
    workers: Optional[int] = typer.Option(None, min=1, help="Rendering processes (default: one per core)."),
) -> None:
    """Does an explanation catch a model that learned a shortcut, and does the audit tell it apart?

    Trains the predictors on phantom cohorts whose positives carry a lead marker at each strength
    (one decoder and encoder per seed), explains them with GVRs and every baseline, measures each
    model's reliance on the marker by intervention, and scores the explanations and the audit
    against it (modelling/stages/shortcuts.py).
    """
    from modelling.config import ConfigError, load_config
    from modelling.stages.shortcuts import run_benchmark

    try:
        values = None if strengths is None else [float(v) for v in strengths.split(",") if v.strip()]
    except ValueError:
        _fail(f"--strengths: expected numbers separated by commas, got {strengths!r}")
    try:
        cfg = load_config(config)
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))
    section = cfg.shortcuts  # the profile's benchmark, each option given on the line replacing its part
    try:
        summary = run_benchmark(cfg, out, strengths=section.strengths if values is None else values,
                                seeds=section.seeds if seeds is None else seeds,
                                negative_share=section.negative_share if negative_share is None else negative_share,
                                workers=workers)
    except ConfigError as exc:  # the options, checked as the shortcuts section: named as typed
        _fail(re.sub(r"\bshortcuts\.(strengths|negative_share|seeds)\b",
                     lambda m: "--" + m.group(1).replace("_", "-"), str(exc)))
    except ValueError as exc:
        _fail(str(exc))
    _print_shortcuts(summary, out)


def _print_shortcuts(summary: dict, out: Path) -> None:
    a = summary["audit"]
    typer.echo(f"audit against the reliance measured by intervention, over {a['n']} models: {a['tp']} true and "
               f"{a['fp']} false positives, {a['tn']} true and {a['fn']} false negatives")
    if summary.get("decided_by_area_share"):  # O, which the audit decides by, was not measured there
        typer.echo(f"  {summary['decided_by_area_share']} of them decided by the GVR change's share by area (N), the "
                   "older rule: the model's own response by region (O) could not be measured on them (`gvr audit` "
                   "on a seed's bundle says why)")
    for name, r in summary["requirements"].items():
        undecided = f", {r['undecided']} undecided" if r.get("undecided") else ""
        typer.echo(f"[{'met' if r['met'] else 'NOT met'}] {name} ({r['flagged']} of {r['models']} flagged{undecided})")
    for method, m in summary["methods"].items():
        rho = "-" if m["spearman_shortcut_mass_vs_reliance"] is None else f"{m['spearman_shortcut_mass_vs_reliance']:z.2f}"
        c = m["area_rule"]
        undefined = f", {c['undefined']} undefined (no mass in its map)" if c.get("undefined") else ""
        typer.echo(f"  {method:<22} rank correlation of its mass on the marker with reliance {rho:>5}; share by area "
                   f"TP {c['tp']} FP {c['fp']} TN {c['tn']} FN {c['fn']}{undefined}")
    typer.echo(f"tables, figure and summary: {out}")


@readers_app.command("simulate")
def readers_simulate(
    bundle_at: Optional[Path] = bundle_argument.positional("A phantom study bundle with baselines"),
    bundle: Optional[list[Path]] = bundle_argument.option(what="A phantom study bundle with baselines"),
    config: Optional[str] = typer.Option(None, help=(
        "Profile name or YAML path (readers, rounds, features; default: the bundle's config.yaml, else the "
        "default profile).")),
    force: bool = typer.Option(False, help="Redo even when the assessments are current."),
) -> None:
    """Simulated readers score every GVR twice; the reader assessments table then feeds Table 2."""
    from analysis.agreement import intra_observer
    from data_schema import Bundle
    from modelling.config import ConfigError
    from modelling.stages.readers import build_simulated_readers

    bundle = bundle_argument.resolve(bundle_at, bundle, must_exist=True)
    if Bundle(bundle, create=False).origin == "real":
        _fail(f"{bundle} holds real data: simulated readers need the phantom's masks; the reader study of real "
              f"data is read by people (`gvr readers packet {bundle} --out ...`)")
    try:
        cfg = _study_config(config, bundle)
        built = build_simulated_readers(cfg, bundle, force=force)
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))
    table = built.read_table("reader_assessments")
    counts = table[table["round"] == 1].groupby(["regime", "feature"])["present"].agg(["sum", "count"])
    for (regime, feature), row in counts.iterrows():
        typer.echo(f"{regime:<11} {feature:<18} {int(row['sum']):>4}/{int(row['count'])} (round 1, both readers)")
    kappas = intra_observer(table, undefined="drop")  # a reader with one answer throughout has none: not an error
    measured = {(r.reader, r.feature): f"{r.kappa:z.2f}" for r in kappas.itertuples()}
    pairs = table[["reader", "feature"]].drop_duplicates().sort_values(["reader", "feature"]).itertuples(index=False)
    # every reader and feature, the undefined ones said (they were left out without a word)
    shown = [f"{r.reader} {r.feature} {measured.get((r.reader, r.feature), 'undefined (one answer throughout)')}"
             for r in pairs]
    typer.echo("intra-observer kappa: " + (", ".join(shown) if measured else "undefined for every reader"))


@app.command()
def analyse(
    bundle_at: Optional[Path] = bundle_argument.positional(),
    bundle: Optional[list[Path]] = bundle_argument.option(),
    no_mixed_models: bool = typer.Option(False, "--no-mixed-models",
                                         help="Skip Table 2's mixed-effects models (no R needed)."),
    force: bool = typer.Option(False, help="Rewrite everything even when the tables have not changed."),
) -> None:
    """Write Table 1, Figure 2 and Table 2 (CSV, HTML, PNG, SVG, and an R script) into BUNDLE/analysis."""
    from analysis.analyse import analyse_bundle

    bundle = bundle_argument.resolve(bundle_at, bundle, must_exist=True)
    outputs = analyse_bundle(bundle, mixed_models=not no_mixed_models, force=force)
    if not outputs.ran:  # the files are those of the run that made them: say so, rather than "wrote" them again
        typer.echo(f"{bundle / 'analysis'} is up to date with the bundle's tables, {len(outputs.written)} files "
                   "(--force rewrites it)")
    else:
        for path in outputs.written:
            typer.echo(f"wrote {bundle / path}")
    for item, reason in outputs.skipped:
        typer.echo(f"skipped {item}: {reason}")


@app.command()
def reproduce(
    config: Optional[str] = typer.Option(None, help=(
        "Profile name (tiny, default, paper) or YAML path (default: the bundle's config.yaml, else the default "
        "profile).")),
    bundle_at: Optional[Path] = bundle_argument.positional("The study bundle directory"),
    out: Optional[list[Path]] = bundle_argument.option("--out", what="The study bundle directory"),
    workers: Optional[int] = typer.Option(None, min=1, help="Processes for parallel stages (default: one per core)."),
    shortcuts: Optional[bool] = typer.Option(None, "--shortcuts/--no-shortcuts", help=(
        "Run the shortcut benchmark into the bundle, or not (default: the config's shortcuts.run; "
        "about 45 minutes on 2 cores for the default profile).")),
) -> None:
    """Build the study bundle end to end (the main job of `make reproduce`).

    Exit code 0 when the manuscript is written; 3 when a real-data bundle stops for its human readers (it says
    what to run); 2 for a usage error; 1 for an error.
    """
    import dataclasses

    from modelling.config import ConfigError
    from modelling.stages.pipeline import PendingStagesError
    from modelling.stages.pipeline import reproduce as run

    out = bundle_argument.resolve(bundle_at, out)
    try:
        cfg = _study_config(config, out)
    except ConfigError as exc:
        _fail(str(exc))
    if shortcuts is not None:
        cfg = dataclasses.replace(cfg, shortcuts=dataclasses.replace(cfg.shortcuts, run=shortcuts))
    _set_threads(cfg)
    try:
        bundle = run(cfg, out, workers=workers)
    except ConfigError as exc:  # refused before anything was written
        _fail(str(exc))
    except PendingStagesError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(3)
    typer.echo(f"study bundle: {bundle.root}")
    for page in sorted((bundle.root / "report").glob("*.html")):
        typer.echo(f"manuscript: {page}")


@app.command()
def report(
    bundle_at: Optional[Path] = bundle_argument.positional(),
    bundle: Optional[list[Path]] = bundle_argument.option(),
    out: Optional[Path] = typer.Option(None, help="Write the HTML here instead of into the bundle's report/ stage."),
    force: bool = typer.Option(False, help="Render even when the bundle is unchanged since the last render."),
) -> None:
    """Render the manuscript (reports/*.py) to self-contained HTML.

    With Quarto on PATH, run `quarto render reports/` with GVR_BUNDLE set instead for Quarto's output.
    """
    from analysis.manuscript import BundleMissingError
    from data_schema import Bundle
    from modelling.stages.pipeline import ReportStagesError, build_report, require_reportable
    from modelling.stages.report import ReportRenderError, render_reports

    bundle = bundle_argument.resolve(bundle_at, bundle, must_exist=True)
    if not (bundle / "manifest.json").exists():
        _fail(f"{bundle}: not a study bundle (no manifest.json); run `gvr reproduce {bundle}` first")
    try:
        if out is not None:
            require_reportable(Bundle(bundle, create=False))
            pages = render_reports(bundle, out)
        else:
            built = build_report(bundle, force=force)
            pages = sorted((built.root / "report").glob("*.html"))
    except (BundleMissingError, ReportRenderError) as exc:
        _fail(str(exc), code=1)
    except ReportStagesError as exc:  # refused before any work
        _fail(str(exc))
    for page in pages:
        typer.echo(f"manuscript: {page}")


def _register_subcommands() -> None:
    from modelling.cli.readers import register

    register(readers_app)


# Before any entry point runs: `gvr` (the script imports `app`) and `python -m modelling.cli` alike.
_register_subcommands()


def _error_text(exc: BaseException) -> str:
    """One message for the user: the error's own text, its problems listed when it has them."""
    problems = getattr(exc, "problems", None)
    if problems:  # "nothing was written" only where that is known: inputs refused before the bundle is touched
        after = "; nothing was written" if getattr(exc, "before_writing", False) else ""
        return "\n".join(str(p) for p in problems) + f"\n{len(problems)} problem(s){after}"
    text = str(exc).strip() or type(exc).__name__
    return text if _is_ours(exc) else f"{type(exc).__name__}: {text}"


def _is_ours(exc: BaseException) -> bool:
    """Errors this package raises say what to do; others get their type named."""
    module = type(exc).__module__.split(".")[0]
    return module in ("modelling", "analysis", "data_schema") or isinstance(exc, (FileNotFoundError, PermissionError))


def _refused(exc: BaseException) -> bool:
    """A request refused before any work because the bundle does not fit it (exit status 2): a bundle that
    holds real data asked for the phantom, no bundle where one is needed, a folder of other files where one would
    start, or tables a stopped stage left; any command may meet one."""
    from data_schema.bundle import (BundleBusyError, BundleNotFoundError, ForeignFolderError, RealDataBundleError,
                                    UnfinishedStageError)

    # a bundle another process is writing, with GVR_BUNDLE_WAIT=0, is refused before any work too: unless this
    # command had written stages already and met it between two of them
    if isinstance(exc, BundleBusyError):
        return exc.before_work
    return isinstance(exc, (RealDataBundleError, BundleNotFoundError, UnfinishedStageError, ForeignFolderError))


INTERRUPTED = "interrupted; a rerun resumes where this one stopped"


def _interrupted(exc: BaseException) -> bool:
    """Whether an exit came from Ctrl-C: a KeyboardInterrupt among its causes and contexts."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def main(argv: Optional[list[str]] = None) -> int:
    """The ``gvr`` command (and ``python -m modelling.cli``): an error is one message. Exit codes: 2 for a
    request refused before any work (options, or a bundle, config or packet that does not fit), 1 when
    work fails or input data have problems (``gvr validate``, ``gvr cohort ingest``), 3 when ``gvr
    reproduce`` stops for human readers, 130 when interrupted.

    The traceback is shown only with ``--debug`` (or ``GVR_DEBUG=1``).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or os.environ.get("GVR_DEBUG") == "1"
    try:
        app(args=argv, prog_name="gvr", standalone_mode=True)
    except SystemExit as exc:
        if _interrupted(exc):  # typer turns Ctrl-C into a quiet exit with status 130
            print(INTERRUPTED, file=sys.stderr)
            return 130
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place where every error becomes a message
        if debug:
            raise
        print(f"error: {_error_text(exc)}", file=sys.stderr)
        if not _is_ours(exc):
            print("(run again with --debug for the traceback)", file=sys.stderr)
        return 2 if _refused(exc) else 1
    return 0
