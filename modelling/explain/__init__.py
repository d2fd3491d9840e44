"""Explanations: GVRs (latent moves, overlays), baseline attribution maps, faithfulness against masks."""
