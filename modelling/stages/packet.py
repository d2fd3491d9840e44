"""A reading packet drawn from a study bundle (the bundle is read, never written)."""

from __future__ import annotations

from pathlib import Path

from data_schema import Bundle
from modelling.readers.packets import PacketError, PacketSummary, draw_packet


def make_packet(bundle_root: str | Path, out_dir: str | Path, **options) -> PacketSummary:
    """Draw GVRs from each model of the bundle at `bundle_root` into a blinded reading packet.

    `options` are those of :func:`modelling.readers.packets.draw_packet` (``key_path``, ``per_model``,
    ``rounds``, ``readers``, ``features``, ``threshold_ng_l``, ``rng``); images are read with their
    manifest hashes checked. Without ``threshold_ng_l``, the BNP threshold of the config the study was
    built with (its ``config.yaml``; 100 ng/L, the paper's, for a bundle without one).

    Raises
    ------
    data_schema.BundleNotFoundError
        When `bundle_root` holds no bundle.
    """
    bundle = Bundle(bundle_root, create=False)
    if "threshold_ng_l" not in options and "config.yaml" in bundle.files:
        from modelling.config import load_config

        options["threshold_ng_l"] = load_config(str(bundle.verify_file("config.yaml"))).cohort.bnp_threshold_ng_l
    if "tables/gvr_index.parquet" not in bundle.files or "explain" not in bundle.stages:
        raise PacketError(f"{bundle.root}: no GVRs yet; run `gvr explain {bundle.root}` first")
    return draw_packet(bundle.read_table("gvr_index"), bundle.read_table("radiographs"), bundle.read_image, out_dir,
                       source=str(bundle.root), **options)
