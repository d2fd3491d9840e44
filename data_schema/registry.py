"""The registry of bundle tables: schema name -> model, primary key and default location."""

from __future__ import annotations

from dataclasses import dataclass

import pandera.pandas as pa

from data_schema import tables


@dataclass(frozen=True)
class TableSpec:
    """A table of the study bundle.

    Attributes
    ----------
    name : str
        Schema name, used in ``manifest.json`` and on the command line.
    model : type
        The pandera ``DataFrameModel`` class.
    primary_key : tuple of str
        Columns that identify a row.
    path : str
        Default location inside a bundle. A table kept once per model and method names its folders
        in angle brackets (``image_gvr/<model>/<method>/rationales.parquet``) and has no default:
        it is read and written by its path.
    """

    name: str
    model: type[pa.DataFrameModel]
    primary_key: tuple[str, ...]
    path: str

    @property
    def has_default_path(self) -> bool:
        return "<" not in self.path

    @property
    def description(self) -> str:
        return " ".join((self.model.__doc__ or "").split("\n\n")[0].split())

    def schema(self) -> pa.DataFrameSchema:
        return self.model.to_schema()


_SPECS = [
    TableSpec("patients", tables.Patients, ("patient_id",), "tables/patients.parquet"),
    TableSpec("radiographs", tables.Radiographs, ("image_id",), "tables/radiographs.parquet"),
    TableSpec("bnp_results", tables.BnpResults, ("result_id",), "tables/bnp_results.parquet"),
    TableSpec("pairing", tables.Pairing, ("image_id",), "tables/pairing.parquet"),
    TableSpec("splits", tables.Splits, ("image_id",), "tables/splits.parquet"),
    TableSpec("phantom_truth", tables.PhantomTruth, ("image_id",), "tables/phantom_truth.parquet"),
    TableSpec("phantom_render", tables.PhantomRender, ("image_id",), "tables/phantom_render.parquet"),
    TableSpec("radiograph_masks", tables.RadiographMasks, ("image_id",), "tables/radiograph_masks.parquet"),
    TableSpec(
        "latents_index", tables.LatentsIndex, ("image_id", "encoder_id"), "tables/latents_index.parquet"
    ),
    TableSpec("predictions", tables.Predictions, ("image_id", "model_id"), "tables/predictions.parquet"),
    TableSpec("gvr_index", tables.GvrIndex, ("gvr_id",), "tables/gvr_index.parquet"),
    TableSpec("faithfulness", tables.Faithfulness, ("gvr_id", "method"), "tables/faithfulness.parquet"),
    TableSpec("gvr_truth", tables.GvrTruth, ("gvr_id",), "tables/gvr_truth.parquet"),
    TableSpec("model_reliance", tables.ModelReliance, ("model_id", "feature"), "tables/model_reliance.parquet"),
    TableSpec("image_rationales", tables.ImageRationales, ("gvr_id",), "image_gvr/<model>/<method>/rationales.parquet"),
    TableSpec("shortcut_shares", tables.ShortcutShares, ("seed", "strength", "model_id", "method"),
              "tables/shortcut_shares.parquet"),
    TableSpec("shortcut_models", tables.ShortcutModels, ("seed", "strength", "model_id"),
              "tables/shortcut_models.parquet"),
    TableSpec(
        "reader_assessments",
        tables.ReaderAssessments,
        ("reader", "round", "gvr_id", "feature"),
        "tables/reader_assessments.parquet",
    ),
    TableSpec("reading_key", tables.ReadingKey, ("blinded_id",), "reading_key.csv"),
]

SCHEMAS: dict[str, TableSpec] = {spec.name: spec for spec in _SPECS}


class UnknownSchemaError(KeyError):
    """A schema name that is not in the registry."""

    def __str__(self) -> str:  # KeyError quotes its message; this one reads as a sentence
        return self.args[0]


def get_spec(name: str) -> TableSpec:
    """Return the table spec called `name`.

    Raises
    ------
    UnknownSchemaError
        When `name` is not a registered schema; the message lists the known ones.
    """
    try:
        return SCHEMAS[name]
    except KeyError:
        raise UnknownSchemaError(
            f"unknown schema {name!r}; known schemas: {', '.join(sorted(SCHEMAS))}"
        ) from None


def guess_schema(filename: str) -> TableSpec | None:
    """The spec whose name is the file's stem (``patients.csv`` -> ``patients``), if any."""
    stem = filename.rsplit("/", 1)[-1].split(".", 1)[0]
    return SCHEMAS.get(stem)
