"""The ``gvr`` command line: typer commands that parse, make one call into the stages, and print."""

from modelling.cli.app import app, main

__all__ = ["app", "main"]
