"""Schemas of the study bundle's tables, their validation, and the bundle itself.

>>> from data_schema import SCHEMAS, validate_frame
>>> sorted(SCHEMAS)[:3]
['bnp_results', 'faithfulness', 'gvr_index']
"""

from data_schema.bundle import (
    Bundle,
    BundleBusyError,
    BundleError,
    BundleNotFoundError,
    BundlePathError,
    ManifestMismatchError,
    NotInManifestError,
    RealDataBundleError,
    Stage,
    validate_bundle,
)
from data_schema.registry import SCHEMAS, TableSpec, UnknownSchemaError, get_spec
from data_schema.validate import Problem, TableValidationError, load_table, validate_file, validate_frame

__all__ = [
    "SCHEMAS",
    "Bundle",
    "BundleBusyError",
    "BundleError",
    "BundleNotFoundError",
    "BundlePathError",
    "ManifestMismatchError",
    "NotInManifestError",
    "Problem",
    "RealDataBundleError",
    "Stage",
    "TableSpec",
    "TableValidationError",
    "UnknownSchemaError",
    "get_spec",
    "load_table",
    "validate_bundle",
    "validate_file",
    "validate_frame",
]
