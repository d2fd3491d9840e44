"""``gvr readers packet | serve | unblind``: the human reader study, from packet to assessments table.

Thin entry points over :mod:`modelling.readers.packets`, :mod:`modelling.readers.server` and
:mod:`modelling.readers.unblind`; :func:`register` adds them to the ``readers`` sub-app of ``gvr``.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import List, Optional

import typer

from modelling.cli import bundle_argument
from modelling.readers.packets import DEFAULT_FEATURES, DEFAULT_READERS

STAGE = "readers-human"


_fail = bundle_argument.fail


def _names(values: List[str]) -> list[str]:
    """``--readers A --readers B`` or ``--readers A,B``."""
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _study_readers(bundle: Path) -> dict:
    """The ``readers`` section of the config the bundle was built with (empty without one)."""
    import yaml

    stored = bundle / "config.yaml"
    if not stored.is_file():
        return {}
    return (yaml.safe_load(stored.read_text()) or {}).get("readers") or {}


def packet(
    bundle_at: Optional[Path] = bundle_argument.positional("The study bundle with GVRs"),
    bundle: Optional[list[Path]] = bundle_argument.option(what="The study bundle with GVRs"),
    out: Path = typer.Option(..., "--out", help="The packet directory to create (handed to the readers)."),
    key: Path = typer.Option(..., "--key", help="The key CSV to write, outside the packet (kept from the readers)."),
    per_model: Optional[int] = typer.Option(None, "--per-model", min=1, show_default=False, help=(
        "GVRs drawn from each model. Default: the bundle's readers.per_model (config.yaml), else 50.")),
    rounds: Optional[int] = typer.Option(None, "--rounds", min=1, show_default=False, help=(
        "Reading rounds. Default: the bundle's readers.rounds (config.yaml), else 2.")),
    readers: List[str] = typer.Option(list(DEFAULT_READERS), "--readers",
                                      help="Reader ids: repeat the option or separate by commas (A,B)."),
    features: List[str] = typer.Option(list(DEFAULT_FEATURES), "--features",
                                       help="Features scored: repeat the option or separate by commas."),
    seed: Optional[int] = typer.Option(None, "--seed", help=(
        "Seed of the draw, the blinded ids and the reading orders, for a packet made again the same; "
        "whoever knows it and the study can recompute the key, so keep it with the key. Default: fresh "
        "entropy.")),
) -> None:
    """Draw GVRs predicted above the study's BNP threshold from each model into a blinded reading packet;
    write its key apart."""
    from data_schema import BundleError, TableValidationError
    from modelling.readers.packets import PacketError
    from modelling.stages.packet import make_packet

    bundle = bundle_argument.resolve(bundle_at, bundle, must_exist=True)
    study = _study_readers(bundle)
    per_model = per_model if per_model is not None else study.get("per_model", 50)
    rounds = rounds if rounds is not None else study.get("rounds", 2)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            summary = make_packet(bundle, out, key_path=key, per_model=per_model, rounds=rounds,
                                  readers=_names(readers), features=_names(features), rng=seed)
    except (PacketError, TableValidationError, BundleError) as exc:
        _fail(str(exc))
    for warning in caught:
        typer.echo(f"warning: {warning.message}", err=True)
    for row in summary.to_frame().itertuples(index=False):
        note = " (all it has)" if row.short else ""
        typer.echo(f"{row.model_id:<24} {row.drawn:>4} of {row.available} eligible GVRs{note}")
    p = summary.packet
    typer.echo(f"packet: {p.root}  ({len(p.ids)} GVRs, readers {', '.join(p.readers)}, {p.rounds} round(s))")
    typer.echo(f"key:    {summary.key_path}  (keep it from the readers)")


def serve(
    packet_dir: Path = typer.Argument(..., exists=True, file_okay=False, metavar="PACKET_DIR",
                                     help="The reading packet."),
    reader: str = typer.Option(..., "--reader", help="Reader id."),
    round: int = typer.Option(..., "--round", min=1, help="Reading round."),  # noqa: A002 - the study's word
    port: int = typer.Option(0, "--port", min=0, max=65535, help="Port (0: a free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (default: this machine only)."),
    responses: Optional[Path] = typer.Option(None, "--responses",
                                             help="Responses CSV (default: PACKET/responses/READER-roundK.csv)."),
) -> None:
    """Serve the reading page for one reader and round; answers are saved at once. Ctrl-C stops it."""
    from modelling.readers.packets import PacketError
    from modelling.readers.server import make_server
    from modelling.readers.unblind import ResponsesError

    try:
        server = make_server(packet_dir, reader=reader, round=round, responses_path=responses, host=host, port=port)
    except (PacketError, ResponsesError, OSError) as exc:
        _fail(str(exc))
    typer.echo(f"reader {reader}, round {round}: open {server.url}")
    typer.echo(f"answers are saved to {server.session.path}; press Ctrl-C to stop")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        typer.echo("stopped")
    finally:
        server.server_close()


def unblind(
    packet_dir: Path = typer.Argument(..., exists=True, file_okay=False, metavar="PACKET_DIR",
                                     help="The reading packet."),
    responses: List[Path] = typer.Argument(..., metavar="RESPONSES",
                                       help="Responses CSVs (every reader and round)."),
    key: Path = typer.Option(..., "--key", exists=True, dir_okay=False, help="The packet's key CSV."),
    latest: bool = typer.Option(False, "--latest", help="For duplicate answers keep the newest (by answered_at)."),
    bundle: Optional[Path] = typer.Option(None, "--bundle", file_okay=False,
                                          help="Write tables/reader_assessments.parquet into this bundle."),
    out: Optional[Path] = typer.Option(None, "--out", dir_okay=False, help="Or write the table to this CSV."),
) -> None:
    """Join the readers' responses to the key: the reader assessments table (Table 2's input).

    A responses CSV (the reading page writes PACKET/responses/READER-roundK.csv; one may be written by hand)
    has the columns reader, round, blinded_id, feature, present (true or false; yes/no and 1/0 are read too) and answered_at (ISO 8601),
    one row per feature of each GVR read. Problems in them are listed with file, row and column (exit 1).
    """
    from data_schema import Bundle, TableValidationError, load_table, validate_frame
    from data_schema.io import atomic_write_text
    from modelling.readers.packets import PacketError, load_packet
    from modelling.readers.unblind import mismatches_with_study, pictures_not_from_study
    from modelling.readers.unblind import unblind as unblind_responses

    if (bundle is None) == (out is None):
        _fail("give exactly one of --bundle BUNDLE or --out FILE.csv")
    if out is not None and out.suffix.lower() != ".csv":
        _fail(f"--out must end in .csv, got {out}")
    try:
        table = unblind_responses(packet_dir, responses, key, latest=latest)
    except PacketError as exc:  # a key or packet that does not fit: refused (2)
        _fail(str(exc))
    except TableValidationError as exc:  # problems in the readers' answers: input data (1), every one listed
        _fail(str(exc), code=1)
    if out is not None:
        problems = validate_frame(table, "reader_assessments", file=str(out))
        if problems:
            _fail("\n".join(str(p) for p in problems))
        atomic_write_text(out, table.to_csv(index=False))
        written = out
    else:
        target = Bundle(bundle, create=False)  # a mistyped --bundle is an error, not a new bundle
        if "tables/gvr_index.parquet" not in target.files:
            _fail(f"{bundle} has no GVR index: the packet was not drawn from it (give the study it came from)")
        gvr_index = target.read_table("gvr_index")
        wrong = mismatches_with_study(table, gvr_index, target.read_table("radiographs"))
        if wrong:
            _fail(f"the key does not belong to the study in {bundle}: " + "; ".join(wrong))
        unlike = pictures_not_from_study(load_packet(packet_dir), load_table(key, "reading_key"), gvr_index,
                                         target.read_image)
        if unlike:
            _fail(f"the readers saw other pictures than the study in {bundle} holds for {len(unlike)} of the packet's "
                  f"GVRs (e.g. {unlike[0]}): the packet was drawn from another bundle, or before these GVRs were "
                  "made again; unblind into the bundle it was drawn from")
        config = {"packet": _sha256(packet_dir / "packet.json"), "key": _sha256(key), "latest": latest,
                  "responses": sorted(_sha256(p) for p in responses)}
        with target.stage(STAGE, config=config, seed=None, inputs=["tables/gvr_index.parquet"]) as stage:
            written = stage.write_table("reader_assessments", table)
    counts = table.groupby(["regime", "feature"])["present"].agg(["sum", "count"])
    for (regime, feature), row in counts.iterrows():
        typer.echo(f"{regime:<11} {feature:<18} {int(row['sum']):>4}/{int(row['count'])} (all readers and rounds)")
    typer.echo(f"wrote {written} ({len(table)} answers)")
    if out is None:  # the answers are in the study: what turns them into Table 2 and the manuscript
        typer.echo(f"next: gvr reproduce {bundle}   (the analysis and the manuscript)")


def register(readers_app: typer.Typer) -> None:
    """Add ``packet``, ``serve`` and ``unblind`` to the ``readers`` sub-app."""
    readers_app.command("packet")(packet)
    readers_app.command("serve")(serve)
    readers_app.command("unblind")(unblind)
