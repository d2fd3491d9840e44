"""Simulated readers for the phantom study: Table 2 without human readers.

A simulated reader looks at a GVR's change and marks a feature present when the share of the change
inside that feature's ground-truth mask, plus the reader's own noise, exceeds the reader's threshold
(a stricter reader has a higher one). Readers score cardiomegaly (heart mask), pleural effusion
(effusion mask), airspace opacity (opacity mask) and reduced body mass (soft-tissue mask); "no CHF
features" is marked when none of the first three is. In the second round each answer repeats the
first round's with the reader's agreement rate and is drawn afresh otherwise, which sets the
intra-observer kappa. Defaults: reader A stricter and less consistent than reader B, as the paper's
resident and radiologist were ("Reader A was generally less likely to assign features than reader B
and had lower intraobserver agreement").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from modelling.readers.answers import CHF_FEATURES, NO_CHF

#: Which mask a feature is read from.
FEATURE_MASKS = {
    "cardiomegaly": "heart",
    "pleural_effusion": "effusion",
    "airspace_opacity": "opacity",
    "reduced_body_mass": "soft_tissue",
}


@dataclass(frozen=True)
class SimulatedReader:
    """One reader's behaviour.

    Attributes
    ----------
    name : str
    threshold : float
        Share of the GVR's change inside a feature's mask above which the reader sees the feature.
    noise : float
        SD of the reader's noise on that share, per GVR, feature and round.
    agreement : float
        Probability that a second-round answer repeats the first round's.
    """

    name: str
    threshold: float
    noise: float
    agreement: float

    def __post_init__(self):
        if not 0 <= self.agreement <= 1:
            raise ValueError(f"reader {self.name}: agreement must lie in [0, 1]; got {self.agreement}")
        if self.noise < 0:
            raise ValueError(f"reader {self.name}: noise must not be negative; got {self.noise}")


#: Tuned on the default study so that intra-observer kappas fall in the paper's range (0.4-0.8):
#: 0.48-0.78 over four seeds, reader A marking 28-30 % of features and reader B 32-34 %.
DEFAULT_READERS = (
    SimulatedReader("A", threshold=0.12, noise=0.09, agreement=0.55),
    SimulatedReader("B", threshold=0.08, noise=0.08, agreement=0.65),
)


def simulate(faithfulness: pd.DataFrame, gvr_index: pd.DataFrame, radiographs: pd.DataFrame, *,
             readers: tuple[SimulatedReader, ...] = DEFAULT_READERS, rounds: int = 2,
             features: tuple[str, ...] = ("cardiomegaly", "pleural_effusion", "airspace_opacity", "no_chf_features"),
             rng: np.random.Generator | int) -> pd.DataFrame:
    """Reader assessments (schema ``reader_assessments``, ``simulated`` true) of every GVR.

    Raises
    ------
    ValueError
        For a feature the simulation cannot read (the message lists those it can).
    """
    known = set(FEATURE_MASKS) | {NO_CHF}
    unknown = [f for f in features if f not in known]
    if unknown:
        raise ValueError(f"simulated readers cannot score {unknown}; they score {sorted(known)}")
    rng = np.random.default_rng(rng)
    gvr = faithfulness[faithfulness["method"] == "gvr"].set_index("gvr_id")
    index = gvr_index[gvr_index["kind"] == "gvr"].set_index("gvr_id").loc[gvr.index]
    patient = radiographs.set_index("image_id")["patient_id"]
    needed = [f for f in FEATURE_MASKS if f in features or (f in CHF_FEATURES and NO_CHF in features)]
    shares = {f: gvr[f"share_{FEATURE_MASKS[f]}"].fillna(0.0).to_numpy() for f in needed}
    rows = []
    n = len(gvr)
    for reader in readers:
        first = None
        for r in range(1, rounds + 1):
            fresh = {f: shares[f] + rng.normal(0, reader.noise, n) > reader.threshold for f in needed}
            if first is None:
                answers = fresh
                first = fresh
            else:
                keep = {f: rng.random(n) < reader.agreement for f in needed}
                answers = {f: np.where(keep[f], first[f], fresh[f]) for f in needed}
            if NO_CHF in features:
                answers = answers | {NO_CHF: ~np.any([answers[f] for f in CHF_FEATURES], axis=0)}
            for feature in features:
                rows.append(pd.DataFrame({
                    "reader": reader.name, "round": r, "gvr_id": gvr.index.to_numpy(),
                    "regime": index["regime"].to_numpy(), "patient_id": patient.loc[index["image_id"]].to_numpy(),
                    "feature": feature, "present": answers[feature].astype(bool), "simulated": True,
                }))
    return pd.concat(rows, ignore_index=True)
