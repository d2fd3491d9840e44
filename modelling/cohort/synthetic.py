"""The synthetic phantom cohort: patients, visits, radiographs, BNP results and ground truth.

The cohort is drawn in two sets of patients that never overlap, as in the paper's Table 1: patients
with BNP tests (older, sicker; every radiograph has a BNP result within 36 h) and patients without
(younger; a few have BNP results, always more than 36 h from any of their radiographs). The pairing
and the split are then made by :mod:`modelling.cohort.pairing`, exactly as for real data, and recover the
labelled and unlabelled sets.

Disease follows a latent heart-failure severity: per patient, plus a change at each visit. From it
come the cardiothoracic ratio, the pleural effusions, the perihilar opacity, body mass (lower when
sicker) and, once implanted, a pacemaker. BNP follows :class:`BnpModel`, a known log-linear model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from modelling.config import CohortConfig

#: Offsets of streams drawn from the seed, so that adding draws to one part leaves the others alone.
_STREAMS = {"patients": 1, "visits": 2, "disease": 3, "bnp": 4, "render": 5, "split": 6, "shortcut": 7}


@dataclass(frozen=True)
class BnpModel:
    """The phantom's BNP model (natural log of ng/L).

    ``log BNP = intercept + cardiomegaly * (CTR - 0.5) + effusion * (left + right)
    + opacity * opacity + age * (age - 70) + pacemaker * pacemaker
    + body_mass * (BMI - 27) + patient_effect + visit_effect``,
    with ``patient_effect ~ N(0, sd_patient)`` and ``visit_effect ~ N(0, sd_visit)``.
    The defaults are calibrated to the paper's Table 1 (labelled set: median 350-374 ng/L,
    interquartile range about 121-1010, 20-21 % below 100 ng/L): ``tests/modelling/cohort/test_synthetic.py``
    checks the calibration on a cohort of more than 5,000 radiographs.
    """

    intercept: float = 5.53
    cardiomegaly: float = 10.5  # per unit of cardiothoracic ratio
    effusion: float = 0.7  # per unit of hemithorax share, both sides summed
    opacity: float = 0.6
    age: float = 0.026  # per year
    pacemaker: float = 0.5
    body_mass: float = -0.045  # per kg/m^2
    sd_patient: float = 0.65
    sd_visit: float = 0.65

    def terms(self, truth: pd.DataFrame, age_years: np.ndarray) -> pd.DataFrame:
        """The model's terms for each radiograph of `truth` (feature columns of phantom_truth)."""
        return pd.DataFrame({
            "term_cardiomegaly": self.cardiomegaly * (truth["cardiothoracic_ratio"].to_numpy() - 0.5),
            "term_effusion": self.effusion * (truth["effusion_left"].to_numpy() + truth["effusion_right"].to_numpy()),
            "term_opacity": self.opacity * truth["opacity"].to_numpy(),
            "term_age": self.age * (np.asarray(age_years) - 70.0),
            "term_pacemaker": self.pacemaker * truth["pacemaker"].to_numpy().astype(float),
            "term_body_mass": self.body_mass * (truth["body_mass_index"].to_numpy() - 27.0),
        }, index=truth.index)


@dataclass(frozen=True)
class Cohort:
    """The cohort's tables before images are rendered.

    Attributes
    ----------
    patients, radiographs, bnp_results : pandas.DataFrame
        As the bundle schemas, except that radiographs lack ``image_path`` and ``image_index``.
    truth : pandas.DataFrame
        The phantom_truth table without ``mask_path`` and ``mask_index``.
    render : pandas.DataFrame
        Per radiograph, the parameters of :func:`modelling.cohort.phantom.render`.
    labelled_patients : frozenset of str
        Patients drawn with BNP tests (what pairing must recover).
    """

    patients: pd.DataFrame
    radiographs: pd.DataFrame
    bnp_results: pd.DataFrame
    truth: pd.DataFrame
    render: pd.DataFrame
    labelled_patients: frozenset


def _rng(seed: int, stream: str) -> np.random.Generator:
    return np.random.default_rng([seed, _STREAMS[stream]])


def _radiographs_per_patient(rng, patients: int, radiographs: int) -> np.ndarray:
    """At least one each; the rest spread with a long tail, as hospital attendance is."""
    weights = rng.gamma(0.6, size=patients)
    extra = rng.multinomial(radiographs - patients, weights / weights.sum())
    return 1 + extra


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def synthesize(cohort: CohortConfig, *, seed: int, bnp: BnpModel = BnpModel()) -> Cohort:
    """Draw the phantom cohort's tables (no images) for `cohort` sizes and `seed`.

    The same seed and config give identical tables.
    """
    rng = _rng(seed, "patients")
    n_l, n_u = cohort.labelled_patients, cohort.unlabelled_patients
    n = n_l + n_u
    labelled = np.r_[np.ones(n_l, bool), np.zeros(n_u, bool)]
    female = rng.random(n) < 0.455
    age0 = np.where(
        labelled,
        np.clip(rng.normal(74.0, 16.0, n), 14.0, 104.0),
        np.clip(rng.normal(57.0, 22.0, n), 0.0, 107.0),
    )
    severity_p = np.where(labelled, 0.9, cohort.unlabelled_severity) + 0.02 * (age0 - np.where(labelled, 74.0, 57.0)) + rng.normal(0, 1.0, n)
    bmi_p = np.clip(rng.normal(27.0, 4.5, n) - 0.8 * np.maximum(severity_p, 0), 15.0, 50.0)
    pacemaker_p = rng.random(n) < _sigmoid(-3.2 + 0.05 * (age0 - 70.0) + 0.6 * severity_p)
    ap_propensity = np.where(labelled, 0.6, 0.3)
    idiosyncrasy = pd.DataFrame({
        "markers_seed": rng.integers(0, 2**31 - 1, n),
        "electrodes": np.where(rng.random(n) < 0.5, rng.integers(1, 5, n), 0),
        "rotation": rng.normal(0.0, 2.5, n),
        "shift_x": rng.normal(0.0, 0.03, n),
        "shift_y": rng.normal(0.0, 0.03, n),
        "scale": rng.normal(1.0, 0.025, n),
    })

    # ---- visits ---------------------------------------------------------------------------------
    rng = _rng(seed, "visits")
    counts = np.r_[
        _radiographs_per_patient(rng, n_l, cohort.labelled_radiographs),
        _radiographs_per_patient(rng, n_u, cohort.unlabelled_radiographs),
    ]
    start = pd.Timestamp(f"{cohort.first_year}-01-01").value // 10**9
    end = pd.Timestamp(f"{cohort.last_year}-12-31 23:59").value // 10**9
    day = 86_400
    min_gap = 4 * day  # labelled radiographs at least 4 days apart: each BNP is nearest its own
    owner = np.repeat(np.arange(n), counts)
    times = np.empty(owner.size, np.int64)
    pos = 0
    for i, k in enumerate(counts):
        span = min(rng.uniform(0, 6 * 365) * day, end - start - k * min_gap)
        t0 = rng.uniform(start, end - span - k * min_gap)
        offsets = np.sort(rng.uniform(0, span, k)) + np.arange(k) * min_gap
        times[pos:pos + k] = (t0 + offsets).astype(np.int64) // 60 * 60
        pos += k
    first = pd.Series(times).groupby(owner).transform("min").to_numpy()
    age_at = age0[owner] + (times - first) / (365.25 * day)

    # ---- disease per radiograph -------------------------------------------------------------------
    rng = _rng(seed, "disease")
    m = owner.size
    sev = severity_p[owner] + rng.normal(0, 0.6, m)
    ctr = np.clip(0.45 + 0.06 * sev + rng.normal(0, 0.02, m), 0.35, 0.78)

    def effusion_side():
        e = np.clip(0.16 * (sev - 1.0) + rng.normal(0, 0.08, m), 0.0, 0.5)
        return np.where(e < 0.02, 0.0, e)

    eff_l, eff_r = effusion_side(), effusion_side()
    opacity = np.clip(0.3 * (sev - 1.3) + rng.normal(0, 0.12, m), 0.0, 1.0)
    opacity = np.where(opacity < 0.03, 0.0, opacity)
    bmi = np.clip(bmi_p[owner] + rng.normal(0, 0.7, m), 15.0, 50.0)
    visit_rank = pd.Series(times).groupby(owner).rank(method="first").to_numpy() - 1
    implant_at = np.floor(rng.random(n) * counts)
    pacemaker = pacemaker_p[owner] & (visit_rank >= implant_at[owner])
    ap = rng.random(m) < _sigmoid(np.log(ap_propensity[owner] / (1 - ap_propensity[owner])) + 0.5 * sev)

    # ---- order, identifiers ---------------------------------------------------------------------
    order = np.lexsort((owner, times))
    patient_rank = np.empty(n, int)
    first_seen = pd.Series(times[order]).groupby(owner[order]).min().sort_values(kind="stable")
    patient_rank[first_seen.index.to_numpy()] = np.arange(n)
    patient_ids = np.array([f"pat{k:06d}" for k in patient_rank])
    image_ids = np.array([f"img{k:07d}" for k in range(m)])
    o = order  # radiograph rows in acquisition order
    acquired = pd.to_datetime(times[o], unit="s")

    truth = pd.DataFrame({
        "image_id": image_ids,
        "cardiothoracic_ratio": ctr[o],
        "cardiomegaly": ctr[o] > 0.5,
        "effusion_left": eff_l[o],
        "effusion_right": eff_r[o],
        "opacity": opacity[o],
        "pacemaker": pacemaker[o],
        "body_mass_index": bmi[o],
    })
    terms = bnp.terms(truth, age_at[o])
    rng = _rng(seed, "bnp")
    patient_effect = rng.normal(0, bnp.sd_patient, n)
    visit_effect = rng.normal(0, bnp.sd_visit, m)
    truth = pd.concat([truth, terms], axis=1)
    truth["patient_effect"] = patient_effect[owner[o]]
    truth["visit_effect"] = visit_effect[o]
    truth["log_bnp_noiseless"] = bnp.intercept + terms.sum(axis=1).to_numpy()
    log_bnp = truth["log_bnp_noiseless"].to_numpy() + truth["patient_effect"].to_numpy() + truth["visit_effect"].to_numpy()

    radiographs = pd.DataFrame({
        "image_id": image_ids,
        "patient_id": patient_ids[owner[o]],
        "acquired_at": acquired,
        "age_years": np.round(np.minimum(age_at[o], 120.0), 2),
        "projection": np.where(ap[o], "AP", "PA"),
    })
    patients = pd.DataFrame({
        "patient_id": patient_ids,
        "sex": np.where(female, "F", "M"),
        "age_years": np.round(age0, 2),
    }).sort_values("patient_id", kind="stable").reset_index(drop=True)

    # ---- BNP results ------------------------------------------------------------------------------
    hour = 3600
    results_t, results_owner, results_log = [], [], []
    lab_rows = np.flatnonzero(labelled[owner[o]])
    offsets = rng.uniform(-30, 30, lab_rows.size) * hour  # within the 36 h window, on either side
    results_t.append(times[o][lab_rows] + offsets.astype(np.int64))
    results_owner.append(owner[o][lab_rows])
    results_log.append(log_bnp[lab_rows])
    # results far from any radiograph: labelled patients' clinic tests, unlabelled patients' few tests
    extra_p = np.flatnonzero(rng.random(n) < np.where(labelled, 0.3, 0.08))
    by_patient = pd.Series(times[o]).groupby(owner[o]).apply(np.asarray)
    for p in extra_p:
        own = by_patient[p]
        t = int(own[rng.integers(own.size)] + rng.choice([-1, 1]) * rng.uniform(40, 60 * 24) * hour)
        if np.min(np.abs(own - t)) < 37 * hour:
            continue  # would pair; the design keeps these outside the window
        results_t.append(np.array([t]))
        results_owner.append(np.array([p]))
        noiseless = bnp.intercept + bnp.age * (age0[p] - 70.0) + bnp.cardiomegaly * 0.06 * severity_p[p]
        results_log.append(np.array([noiseless + patient_effect[p] + rng.normal(0, bnp.sd_visit)]))
    r_t = np.concatenate(results_t)
    r_owner = np.concatenate(results_owner)
    r_log = np.concatenate(results_log)
    r_order = np.lexsort((r_owner, r_t))
    bnp_results = pd.DataFrame({
        "result_id": [f"lab{k:07d}" for k in range(r_t.size)],
        "patient_id": patient_ids[r_owner[r_order]],
        "collected_at": pd.to_datetime(r_t[r_order], unit="s"),
        "bnp_ng_l": np.clip(np.round(np.exp(r_log[r_order])), 5.0, 35_000.0),
    })

    # ---- rendering parameters -----------------------------------------------------------------------
    rng = _rng(seed, "render")
    idio = idiosyncrasy.iloc[owner[o]].reset_index(drop=True)
    render = pd.DataFrame({
        "cardiothoracic_ratio": truth["cardiothoracic_ratio"],
        "effusion_left": truth["effusion_left"],
        "effusion_right": truth["effusion_right"],
        "opacity": truth["opacity"],
        "pacemaker": truth["pacemaker"].astype(float),
        "body_mass_index": truth["body_mass_index"],
        "ap": ap[o].astype(float),
        "rotation_deg": idio["rotation"] + rng.normal(0, 0.7, m),
        "shift_x": idio["shift_x"] + rng.normal(0, 0.01, m),
        "shift_y": idio["shift_y"] + rng.normal(0, 0.01, m),
        "scale": idio["scale"],
        "markers_seed": idio["markers_seed"],
        "electrodes": idio["electrodes"],
        "exposure": rng.normal(1.0, 0.05, m),
        "noise": rng.uniform(0.01, 0.03, m),
        "blur": rng.uniform(0.5, 1.1, m),
        "noise_seed": rng.integers(0, 2**31 - 1, m),
    })
    # the shortcut: its own stream, so that a cohort without it draws everything else as before
    positive = np.clip(np.round(np.exp(log_bnp)), 5.0, 35_000.0) >= cohort.bnp_threshold_ng_l  # as results are reported
    draw = _rng(seed, "shortcut").random(m)
    render["shortcut"] = np.where(positive, draw < cohort.shortcut_positive_share,
                                  draw < cohort.shortcut_negative_share).astype(float)
    return Cohort(
        patients=patients,
        radiographs=radiographs,
        bnp_results=bnp_results,
        truth=truth,
        render=render,
        labelled_patients=frozenset(patient_ids[labelled].tolist()),
    )

