"""The study bundle on the command line, named the same way by every command.

Every command that reads or builds a bundle takes it either as its first argument (``gvr audit study``) or as
``--bundle`` (``gvr audit --bundle study``), and looks in ``study`` (where ``make reproduce`` writes) when given
neither. Commands that build a bundle also take ``--out``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

DEFAULT = Path("study")


def positional(what: str = "The study bundle") -> typer.models.ArgumentInfo:
    return typer.Argument(None, metavar="BUNDLE", show_default=False,
                          help=f"{what}; or --bundle. Default: {DEFAULT}.")


def option(*aliases: str, what: str = "The study bundle") -> typer.models.OptionInfo:
    return typer.Option(None, "--bundle", *aliases, show_default=False,
                        help=f"{what}; or as the first argument. Default: {DEFAULT}.")


def resolve(given: Optional[Path], named: Optional[Path], *, must_exist: bool = False) -> Path:
    """The bundle from the argument or the option; both only when they agree."""
    if given is not None and named is not None and Path(given) != Path(named):
        _fail(f"the bundle is given twice, as {given} and as --bundle {named}: give it once")
    bundle = Path(given if given is not None else named if named is not None else DEFAULT)
    if must_exist and not bundle.is_dir():
        where = "" if given is not None or named is not None else " (the default; name the bundle as the first argument)"
        _fail(f"{bundle}: no such bundle directory{where}")
    return bundle


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
