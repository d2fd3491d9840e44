"""The tables of a study bundle, one pandera model each.

Every column documents its meaning and, where it has one, its unit (``metadata={"unit": ...}``);
allowed values are checks, so they are enforced on write and on read and exported to the
Frictionless Table Schemas in ``data_schema/json/`` for R users.

Conventions shared by all tables:

- identifiers are text matching :data:`ID_PATTERN` (safe in file names, no spaces);
- timestamps are naive local times of the acquiring hospital, ISO 8601 in CSV files;
- BNP is B-type natriuretic peptide in ng/L (equal to pg/mL), strictly positive;
- paths inside a bundle are relative, with ``/`` separators, and never leave the bundle
  (:data:`BUNDLE_PATH_PATTERN` rejects absolute paths, drive letters and ``..`` segments);
- in CSV files only the empty string means "missing": text such as ``"None"`` or ``"NA"`` is data.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
BUNDLE_PATH_PATTERN = r"^(?![/\\])(?![A-Za-z]:)(?!.*(?:^|[/\\])\.\.(?:[/\\]|$))[^\x00]+$"
FEATURE_PATTERN = r"^[a-z][a-z0-9_]*$"

SEXES = ["F", "M"]
PROJECTIONS = ["AP", "PA"]
SETS = ["unlabelled", "train", "test"]
REGIMES = ["correct", "overfitted"]
ROLES = ["train", "test", "validation"]
PREDICTOR_KINDS = ["linear", "mlp"]
GVR_KINDS = ["gvr", "inverse"]
EXPLANATION_METHODS = ["gvr", "gvr_surrogate", "occlusion", "integrated_gradients", "lime", "gradcam"]
#: "markers": the patient's idiosyncrasies (skin markers, ECG electrodes, laterality marker), which
#: cause nothing: an explanation that points at them points at the patient, not the disease.
#: "shortcut": a lead marker given to a chosen share of positive radiographs (shortcut benchmarks).
MASK_FEATURES = ["heart", "effusion", "opacity", "soft_tissue", "device", "markers", "shortcut"]
#: The phantom features intervened on one at a time (modelling.cohort.counterfactual.INTERVENTIONS).
INTERVENTION_FEATURES = ["heart", "effusion", "opacity", "pacemaker", "body_mass", "projection", "markers",
                         "shortcut"]
#: The features the paper's readers scored (Table 2), then reduced body mass (Figure 4).
READER_FEATURES = [
    "cardiomegaly",
    "pleural_effusion",
    "airspace_opacity",
    "no_chf_features",
    "reduced_body_mass",
]

MAX_BNP_NG_L = 100_000.0  # above every assay's reportable range; larger values are typos


def _id(description: str, **kwargs) -> pa.Field:
    return pa.Field(str_matches=ID_PATTERN, description=description, **kwargs)


def _predicted(description: str, **kwargs) -> pa.Field:
    """A model's BNP: positive, with no assay ceiling (an extreme prediction is a finding, not a typo)."""
    return pa.Field(gt=0, description=description, metadata={"unit": "ng/L"}, **kwargs)


#: A mask_path column's description: the phantom's masks and a user's segmentations are packed alike.
MASK_STACK = ("NPZ whose array 'bits' of shape (n, height, width), uint8, holds the masks as bits: bit i "
              "set where feature i lies, in the order " + ", ".join(MASK_FEATURES) + ".")


def _path(description: str, **kwargs) -> pa.Field:
    return pa.Field(str_matches=BUNDLE_PATH_PATTERN, description=description, **kwargs)


def _bnp(description: str, **kwargs) -> pa.Field:
    return pa.Field(
        gt=0, le=MAX_BNP_NG_L, description=description, metadata={"unit": "ng/L"}, **kwargs
    )


class _Strict(pa.DataFrameModel):
    class Config:
        strict = True  # an unknown column is a problem, not silently carried along
        coerce = False


class Patients(_Strict):
    """One row per patient."""

    patient_id: Series[str] = _id("Patient identifier (a salted hash for real data).", unique=True)
    sex: Series[str] = pa.Field(isin=SEXES, description="Sex recorded in the hospital system.")
    age_years: Series[float] = pa.Field(
        ge=0,
        le=120,
        description="Age at the patient's first radiograph in the study.",
        metadata={"unit": "years"},
    )


class Radiographs(_Strict):
    """One row per frontal chest radiograph."""

    image_id: Series[str] = _id("Radiograph identifier.", unique=True)
    patient_id: Series[str] = _id("Patient identifier (patients.patient_id).")
    acquired_at: Series[pd.Timestamp] = pa.Field(description="Acquisition time.")
    age_years: Series[float] = pa.Field(
        ge=0, le=120, description="Age at acquisition.", metadata={"unit": "years"}
    )
    projection: Series[str] = pa.Field(
        isin=PROJECTIONS, description="AP (supine or mobile) or PA (erect)."
    )
    image_path: Series[str] = _path(
        "NPY stack of shape (n, height, width), uint8, bright = dense, holding the radiograph; "
        "relative to the bundle root."
    )
    image_index: Series[int] = pa.Field(ge=0, description="Index of the radiograph in that stack.")
    height_px: Series[int] = pa.Field(ge=1, description="Image height.", metadata={"unit": "px"})
    width_px: Series[int] = pa.Field(ge=1, description="Image width.", metadata={"unit": "px"})
    pixel_spacing_mm: Series[float] = pa.Field(
        gt=0,
        nullable=True,
        description="Size of one stored pixel (the source's pixel spacing scaled by the resize); empty when unknown, as for the phantom.",
        metadata={"unit": "mm"},
    )


class BnpResults(_Strict):
    """One row per BNP laboratory result."""

    result_id: Series[str] = _id("Laboratory result identifier.", unique=True)
    patient_id: Series[str] = _id("Patient identifier (patients.patient_id).")
    collected_at: Series[pd.Timestamp] = pa.Field(description="Time the sample was collected.")
    bnp_ng_l: Series[float] = _bnp("Serum BNP.")


class Pairing(_Strict):
    """Each labelled radiograph and the BNP result paired with it (nearest within the window)."""

    image_id: Series[str] = _id("Radiograph (radiographs.image_id).", unique=True)
    result_id: Series[str] = _id("Paired BNP result (bnp_results.result_id).")
    hours_apart: Series[float] = pa.Field(
        ge=0,
        description="Absolute time between radiograph and sample (at most the pairing window, 36 h by default).",
        metadata={"unit": "h"},
    )
    bnp_ng_l: Series[float] = _bnp("BNP of the paired result.")


class Splits(_Strict):
    """The set of every radiograph; train and test are split by patient, never by image."""

    image_id: Series[str] = _id("Radiograph (radiographs.image_id).", unique=True)
    patient_id: Series[str] = _id("Patient identifier (patients.patient_id).")
    set: Series[str] = pa.Field(
        isin=SETS, description="unlabelled (no BNP within the window), train or test."
    )

    @pa.dataframe_check(
        description="No patient has radiographs in both the train and the test set."
    )
    @classmethod
    def patient_on_one_side(cls, df: pd.DataFrame) -> Series[bool]:
        labelled = df[df["set"].isin(["train", "test"])]
        sides = labelled.groupby("patient_id")["set"].nunique()
        leaking = set(sides[sides > 1].index)
        return ~(df["patient_id"].isin(leaking) & df["set"].isin(["train", "test"]))


class PhantomRender(_Strict):
    """Everything the phantom drew each radiograph from: with these and its noise seed, the same
    radiograph can be drawn again, or drawn without its disease (ground-truth counterfactuals)."""

    image_id: Series[str] = _id("Radiograph (radiographs.image_id).", unique=True)
    cardiothoracic_ratio: Series[float] = pa.Field(gt=0, lt=1, description="Heart width over thoracic width, as projected PA.")
    effusion_left: Series[float] = pa.Field(ge=0, le=1, description="Left effusion, share of the hemithorax height.")
    effusion_right: Series[float] = pa.Field(ge=0, le=1, description="Right effusion, share of the hemithorax height.")
    opacity: Series[float] = pa.Field(ge=0, le=1, description="Perihilar airspace opacity, 0 none to 1 dense.")
    pacemaker: Series[float] = pa.Field(isin=[0.0, 1.0], description="1 with a pacemaker and its lead.")
    body_mass_index: Series[float] = pa.Field(ge=10, le=80, description="Body mass index.", metadata={"unit": "kg/m^2"})
    ap: Series[float] = pa.Field(isin=[0.0, 1.0], description="1 for an AP (supine) film, 0 for PA.")
    rotation_deg: Series[float] = pa.Field(ge=-45, le=45, description="Patient rotation.", metadata={"unit": "degrees"})
    shift_x: Series[float] = pa.Field(ge=-1, le=1, description="Horizontal shift, in half image widths.")
    shift_y: Series[float] = pa.Field(ge=-1, le=1, description="Vertical shift, in half image heights.")
    scale: Series[float] = pa.Field(gt=0, description="Patient size on the film, 1 typical.")
    markers_seed: Series[int] = pa.Field(ge=0, description="Seed of the patient's skin markers, electrodes' places and laterality marker.")
    electrodes: Series[int] = pa.Field(ge=0, le=4, description="ECG electrodes on the chest.")
    exposure: Series[float] = pa.Field(gt=0, description="Exposure, 1 typical.")
    noise: Series[float] = pa.Field(ge=0, description="Quantum noise level (share of the intensity range).")
    blur: Series[float] = pa.Field(ge=0, description="Blur, in pixels at 64 px.")
    noise_seed: Series[int] = pa.Field(ge=0, description="Seed of this radiograph's noise.")
    shortcut: Series[float] = pa.Field(isin=[0.0, 1.0], description=(
        "1 with the shortcut marker (a lead T at the top of the film), which BNP does not cause."))


class PhantomTruth(_Strict):
    """Ground truth of each phantom radiograph: feature parameters, masks and the BNP model's terms.

    The BNP model is ``log_bnp = intercept + sum(term_*) + patient_effect + visit_effect``;
    ``log_bnp_noiseless`` leaves out both noise effects and is what the oracle AUC uses.
    """

    image_id: Series[str] = _id("Radiograph (radiographs.image_id).", unique=True)
    cardiothoracic_ratio: Series[float] = pa.Field(
        gt=0, lt=1, description="Heart width over thoracic width, as projected PA."
    )
    cardiomegaly: Series[bool] = pa.Field(description="Cardiothoracic ratio above 0.5.")
    effusion_left: Series[float] = pa.Field(
        ge=0, le=1, description="Left pleural effusion, share of the hemithorax height."
    )
    effusion_right: Series[float] = pa.Field(
        ge=0, le=1, description="Right pleural effusion, share of the hemithorax height."
    )
    opacity: Series[float] = pa.Field(
        ge=0, le=1, description="Perihilar airspace opacity, 0 none to 1 dense."
    )
    pacemaker: Series[bool] = pa.Field(description="Pacemaker generator and lead present.")
    body_mass_index: Series[float] = pa.Field(
        ge=10, le=80, description="Body mass index.", metadata={"unit": "kg/m^2"}
    )
    term_cardiomegaly: Series[float] = pa.Field(description="Term of log BNP.", metadata={"unit": "log(ng/L)"})
    term_effusion: Series[float] = pa.Field(description="Term of log BNP.", metadata={"unit": "log(ng/L)"})
    term_opacity: Series[float] = pa.Field(description="Term of log BNP.", metadata={"unit": "log(ng/L)"})
    term_age: Series[float] = pa.Field(description="Term of log BNP.", metadata={"unit": "log(ng/L)"})
    term_pacemaker: Series[float] = pa.Field(description="Term of log BNP.", metadata={"unit": "log(ng/L)"})
    term_body_mass: Series[float] = pa.Field(description="Term of log BNP.", metadata={"unit": "log(ng/L)"})
    patient_effect: Series[float] = pa.Field(
        description="Patient-level noise of log BNP.", metadata={"unit": "log(ng/L)"}
    )
    visit_effect: Series[float] = pa.Field(
        description="Visit-level noise of log BNP.", metadata={"unit": "log(ng/L)"}
    )
    log_bnp_noiseless: Series[float] = pa.Field(
        description="Natural log of BNP without patient or visit noise.", metadata={"unit": "log(ng/L)"}
    )
    mask_path: Series[str] = _path(MASK_STACK)
    mask_index: Series[int] = pa.Field(ge=0, description="Index of the radiograph's masks in that array.")


class RadiographMasks(_Strict):
    """Segmentations of real radiographs (``gvr cohort ingest --masks``): one row per radiograph that has them."""

    image_id: Series[str] = _id("Radiograph (radiographs.image_id).", unique=True)
    mask_path: Series[str] = _path(MASK_STACK)
    mask_index: Series[int] = pa.Field(ge=0, description="Index of the radiograph's masks in that array.")
    segmented: Series[str] = pa.Field(str_matches=r"^[a-z_]+(,[a-z_]+)*$", description=(
        "The features segmented, comma-separated: a feature listed here but not set in the bits is absent from "
        "the radiograph."))


class LatentsIndex(_Strict):
    """Where each radiograph's latent code lies in the latents array of one encoder."""

    image_id: Series[str] = _id("Radiograph (radiographs.image_id).")
    encoder_id: Series[str] = _id("Encoder checkpoint that produced the code.")
    latents_path: Series[str] = _path("NPY array of shape (n, latent_dim), relative to the bundle.")
    row: Series[int] = pa.Field(ge=0, description="Row of the code in the array.")

    class Config:
        unique = ["image_id", "encoder_id"]


class Predictions(_Strict):
    """One predicted BNP per radiograph and model."""

    image_id: Series[str] = _id("Radiograph (radiographs.image_id).")
    model_id: Series[str] = _id("Predictor identifier.")
    predictor: Series[str] = pa.Field(isin=PREDICTOR_KINDS, description="Linear regression or MLP.")
    regime: Series[str] = pa.Field(
        isin=REGIMES,
        description="correct (train split, early stopping on test) or overfitted (train+test, a quarter withheld).",
    )
    role: Series[str] = pa.Field(
        isin=ROLES, description="Whether the model saw the radiograph: train, test or validation."
    )
    checkpoint_sha256: Series[str] = pa.Field(
        str_matches=r"^[0-9a-f]{64}$", description="sha256 of the predictor's checkpoint."
    )
    bnp_true_ng_l: Series[float] = _bnp("Measured BNP of the paired result.")
    bnp_pred_ng_l: Series[float] = _predicted("Predicted BNP.")

    class Config:
        unique = ["image_id", "model_id"]


class GvrIndex(_Strict):
    """One row per Generative Visual Rationale (or inverse GVR frame)."""

    gvr_id: Series[str] = _id("GVR identifier.", unique=True)
    image_id: Series[str] = _id("Radiograph explained (radiographs.image_id).")
    model_id: Series[str] = _id("Predictor explained (predictions.model_id).")
    regime: Series[str] = pa.Field(isin=REGIMES, description="Regime of the predictor.")
    kind: Series[str] = pa.Field(
        isin=GVR_KINDS, description="gvr: towards healthy; inverse: towards a target BNP."
    )
    target_bnp_ng_l: Series[float] = _predicted("BNP the latent code was moved towards.")
    start_pred_ng_l: Series[float] = _predicted("Prediction for the encoded radiograph.")
    end_pred_ng_l: Series[float] = _predicted("Prediction for the moved code.")
    steps: Series[int] = pa.Field(ge=0, description="Gradient steps taken.")
    reached: Series[bool] = pa.Field(description="Whether the target was reached within the step budget.")
    latent_distance: Series[float] = pa.Field(ge=0, description="Euclidean distance moved in latent space.")
    image_distance: Series[float] = pa.Field(
        ge=0, description="Root mean square difference of the decoded images (intensity 0-1)."
    )
    original_path: Series[str] = _path("PNG of the original radiograph.")
    diseased_path: Series[str] = _path("PNG of the decoded original code.")
    healthy_path: Series[str] = _path("PNG of the decoded moved code.")
    overlay_path: Series[str] = _path("PNG of the signed difference over the original.")
    movie_path: Series[str] = _path("GIF of the path, if written (an MP4 of the same frames lies beside it).",
                                    nullable=True)


def _share(mask: str) -> pa.Field:
    return pa.Field(ge=0, le=1, nullable=True,
                    description=f"Share of the explanation's absolute weight inside the {mask} mask.")


class Faithfulness(_Strict):
    """How each explanation of a phantom radiograph sits on the ground-truth masks."""

    gvr_id: Series[str] = _id("GVR whose radiograph is explained (gvr_index.gvr_id).")
    model_id: Series[str] = _id("Predictor explained.")
    regime: Series[str] = pa.Field(isin=REGIMES, description="Regime of that predictor.")
    method: Series[str] = pa.Field(
        isin=EXPLANATION_METHODS,
        description=("gvr (|diseased - healthy|), gvr_surrogate (the same moved along a surrogate of an image "
                     "model) or a baseline attribution (absolute value)."),
    )
    share_heart: Series[float] = _share("heart")
    share_effusion: Series[float] = _share("effusion")
    share_opacity: Series[float] = _share("opacity")
    share_soft_tissue: Series[float] = _share("soft tissue")
    share_device: Series[float] = _share("device")
    share_markers: Series[float] = _share("markers (skin markers, ECG electrodes, laterality marker)")
    share_shortcut: Series[float] = _share("shortcut marker")
    share_outside: Series[float] = pa.Field(
        ge=0, le=1, nullable=True, description="Share of the absolute weight outside every mask."
    )
    share_disease: Series[float] = pa.Field(ge=0, le=1, nullable=True, description=(
        "Share of the absolute weight in the union of the heart, effusion and opacity masks (an overlap counts once)."))
    share_non_disease: Series[float] = pa.Field(ge=0, le=1, nullable=True, description=(
        "Share of the absolute weight in the union of the shortcut, markers and soft-tissue masks."))
    drivers: Series[str] = pa.Field(
        nullable=True,
        description="Masks of the features that raise this radiograph's BNP, comma-separated; empty when none.",
    )
    pointing_hit: Series[float] = pa.Field(
        isin=[0.0, 1.0], nullable=True,
        description="1 when the largest absolute weight lies in a driving mask, 0 when not; empty without drivers.",
    )
    iou_top: Series[float] = pa.Field(
        ge=0, le=1, nullable=True,
        description="IoU of the top-weighted pixels (as many as the driving masks cover) with the driving masks.",
    )
    relevance_mass: Series[float] = pa.Field(
        ge=0, le=1, nullable=True,
        description="Relevance mass accuracy (Quantus): share of the absolute weight inside the driving masks.",
    )
    relevance_rank: Series[float] = pa.Field(
        ge=0, le=1, nullable=True,
        description="Relevance rank accuracy (Quantus): share of the top-K pixels inside the driving masks, K their size.",
    )
    sparseness: Series[float] = pa.Field(
        ge=0, le=1, nullable=True, description="Gini index of the absolute weights (Quantus's Sparseness).",
    )
    true_change_r: Series[float] = pa.Field(
        ge=-1, le=1, nullable=True,
        description=("Pearson r of the signed map with the true change (radiograph minus its disease-free "
                     "counterfactual; tables/gvr_truth.parquet); empty without it or where a map is constant."),
    )

    class Config:
        unique = ["gvr_id", "method"]


def _coefficient(feature: str) -> pa.Field:
    return pa.Field(nullable=True, description=(
        f"Least-squares coefficient of the true change map of the {feature} intervention in the GVR's "
        "diseased - healthy change (1: the GVR removes that feature fully; 0 when the intervention "
        "changes nothing on this radiograph)."))


def _drop(feature: str) -> pa.Field:
    return pa.Field(description=(
        f"Predicted log BNP of the radiograph minus that of the same radiograph after the {feature} "
        "intervention (encoded and predicted again); positive when the feature raises the prediction."),
        metadata={"unit": "natural log of ng/L"})


class GvrTruth(_Strict):
    """Each GVR of a phantom radiograph against its ground truth: the true disease-free counterfactual
    and one intervention per feature (``modelling.cohort.counterfactual``)."""

    gvr_id: Series[str] = _id("GVR (gvr_index.gvr_id).", unique=True)
    image_id: Series[str] = _id("Radiograph explained.")
    model_id: Series[str] = _id("Predictor explained.")
    regime: Series[str] = pa.Field(isin=REGIMES, description="Regime of that predictor.")
    counterfactual_path: Series[str] = _path("PNG of the radiograph rendered without its disease, same noise.")
    change_row: Series[int] = pa.Field(ge=0, description=(
        "Row of arrays/true_change.npy holding (original - counterfactual) / 255, float32 (size x size), and of "
        "arrays/target_change.npy holding (original - target counterfactual) / 255."))
    pixel_r: Series[float] = pa.Field(ge=-1, le=1, nullable=True, description=(
        "Pearson r of the GVR's diseased - healthy with the true change, over pixels; empty when either is "
        "constant."))
    model_change_r: Series[float] = pa.Field(ge=-1, le=1, nullable=True, description=(
        "Pearson r of the GVR's diseased - healthy with the change the model's own reliance implies: the sum of "
        "each intervention's true change map weighted by that intervention's drop on this radiograph."))
    target_fraction: Series[float] = pa.Field(ge=0, le=1, description=(
        "How far (0-1) the visible terms of the phantom's BNP model were moved towards healthy for the noiseless "
        "model to cross the GVR's target (modelling.cohort.counterfactual.target_fraction)."))
    target_reached: Series[bool] = pa.Field(description="Whether moving them all the way crosses the target.")
    target_counterfactual_path: Series[str] = _path("PNG of the target counterfactual (same noise).")
    valid: Series[bool] = pa.Field(description=(
        "The model's decision on the reconstructions as stored: the diseased PNG, encoded again, is predicted at "
        "or above the GVR's target and the healthy PNG below it (what a reader of the GVR sees is what the model "
        "would say)."))
    pixel_r_target: Series[float] = pa.Field(ge=-1, le=1, nullable=True, description=(
        "Pearson r of the GVR's diseased - healthy with original - target counterfactual (arrays/target_change.npy, "
        "row change_row); empty where either is constant."))
    cardiomegaly: Series[bool] = pa.Field(description="The radiograph's cardiothoracic ratio is above 0.5 (truth).")
    effusion: Series[bool] = pa.Field(description="The radiograph has a pleural effusion (truth).")
    large_effusion: Series[bool] = pa.Field(description=(
        "Its effusion fills at least a tenth of the hemithorax's height on either side (truth; "
        "modelling.cohort.effusion.LARGE): fluid that may hide the heart border the ratio is read at."))
    ctr_diseased: Series[float] = pa.Field(gt=0, nullable=True, description=(
        "Cardiothoracic ratio measured on the diseased reconstruction (modelling.cohort.ctr); empty when "
        "two lungs cannot be found."))
    ctr_healthy: Series[float] = pa.Field(gt=0, nullable=True, description="The same on the healthy reconstruction.")
    effusion_height_diseased: Series[float] = pa.Field(gt=0, nullable=True, description=(
        "Aerated lung height over thoracic width on the side with the larger true effusion, measured on the "
        "diseased reconstruction (modelling.cohort.effusion); empty when the lungs cannot be found."))
    effusion_height_healthy: Series[float] = pa.Field(gt=0, nullable=True, description=(
        "The same on the healthy reconstruction."))
    coef_heart: Series[float] = _coefficient("heart")
    coef_effusion: Series[float] = _coefficient("effusion")
    coef_opacity: Series[float] = _coefficient("opacity")
    coef_pacemaker: Series[float] = _coefficient("pacemaker")
    coef_body_mass: Series[float] = _coefficient("body mass")
    coef_projection: Series[float] = _coefficient("projection")
    coef_markers: Series[float] = _coefficient("markers")
    coef_shortcut: Series[float] = _coefficient("shortcut")
    drop_heart: Series[float] = _drop("heart")
    drop_effusion: Series[float] = _drop("effusion")
    drop_opacity: Series[float] = _drop("opacity")
    drop_pacemaker: Series[float] = _drop("pacemaker")
    drop_body_mass: Series[float] = _drop("body mass")
    drop_projection: Series[float] = _drop("projection")
    drop_markers: Series[float] = _drop("markers")
    drop_shortcut: Series[float] = _drop("shortcut")


class ModelReliance(_Strict):
    """What each model relies on, by intervention on its GVR radiographs, beside what its GVRs show."""

    model_id: Series[str] = _id("Predictor.")
    regime: Series[str] = pa.Field(isin=REGIMES, description="Regime of that predictor.")
    feature: Series[str] = pa.Field(isin=INTERVENTION_FEATURES, description="Feature intervened on.")
    intervention: Series[str] = pa.Field(description="What the intervention does.")
    radiographs: Series[int] = pa.Field(ge=0, description="The model's GVR radiographs.")
    changed: Series[int] = pa.Field(ge=0, description="Of those, how many the intervention changes.")
    mean_drop: Series[float] = pa.Field(description=(
        "Mean fall in predicted log BNP over the radiographs (0 where the intervention changes nothing)."),
        metadata={"unit": "natural log of ng/L"})
    sd_drop: Series[float] = pa.Field(ge=0, nullable=True, description="Its standard deviation.")
    gvr_mean_coefficient: Series[float] = pa.Field(nullable=True, description=(
        "Mean over the same radiographs of the GVRs' coefficient on this feature's true change map "
        "(0 where it changes nothing)."))

    class Config:
        unique = ["model_id", "feature"]


def _mean_drop(feature: str) -> pa.Field:
    return pa.Field(description=f"Mean fall in predicted log BNP when the {feature} intervention is applied.",
                    metadata={"unit": "natural log of ng/L"})


class _ShortcutModel(_Strict):
    """The columns that name one model of the shortcut benchmark."""

    seed: Series[int] = pa.Field(ge=0, description="Seed of the cohort and networks.")
    strength: Series[float] = pa.Field(ge=0, le=1, description="Share of positives carrying the shortcut marker.")
    model_id: Series[str] = _id("Predictor.")
    regime: Series[str] = pa.Field(isin=REGIMES, description="Regime of that predictor.")


class ShortcutShares(_ShortcutModel):
    """The shortcut benchmark: where each method's explanations of one model lie, per seed and strength."""

    method: Series[str] = pa.Field(isin=EXPLANATION_METHODS, description="Explanation method.")
    explained: Series[int] = pa.Field(ge=0, description="Radiographs explained (the model's GVR radiographs).")
    carriers: Series[int] = pa.Field(ge=0, description="Of those, how many carry the shortcut marker.")
    share_shortcut: Series[float] = pa.Field(ge=0, le=1, nullable=True, description=(
        "Mean share of the explanation's absolute weight in the shortcut mask, over every radiograph explained."))
    share_shortcut_carriers: Series[float] = pa.Field(ge=0, le=1, nullable=True, description=(
        "The same over the radiographs that carry the marker (none: undefined)."))
    share_disease: Series[float] = pa.Field(ge=0, le=1, nullable=True, description=(
        "Mean share in the union of the heart, effusion and opacity masks (an overlap counts once)."))
    share_elsewhere: Series[float] = pa.Field(ge=0, le=1, nullable=True, description=(
        "One minus the two shares above (masks may overlap: floored at 0)."))
    non_disease_share: Series[float] = pa.Field(ge=0, le=1, nullable=True, description=(
        "N on the method's mean shares: non-disease over non-disease plus disease masks, by area (the audit "
        "decides by the model's response by region instead)."))

    class Config:
        unique = ["seed", "strength", "model_id", "method"]


class ShortcutModels(_ShortcutModel):
    """The shortcut benchmark: each model's measured reliance, the truth it gives, and the audit's decision."""

    held_out_auc: Series[float] = pa.Field(ge=0, le=1, nullable=True, description=(
        "AUC on data the model did not train on: the test split (correct), the withheld quarter (overfitted)."))
    shortcut_reliance: Series[float] = pa.Field(description=(
        "Mean fall in predicted log BNP over the model's GVR radiographs when the marker is removed."),
        metadata={"unit": "natural log of ng/L"})
    drop_heart: Series[float] = _mean_drop("heart")
    drop_effusion: Series[float] = _mean_drop("effusion")
    drop_opacity: Series[float] = _mean_drop("opacity")
    drop_pacemaker: Series[float] = _mean_drop("pacemaker")
    drop_body_mass: Series[float] = _mean_drop("body mass")
    drop_projection: Series[float] = _mean_drop("projection")
    drop_markers: Series[float] = _mean_drop("markers")
    drop_shortcut: Series[float] = _mean_drop("shortcut")
    reliance_share: Series[float] = pa.Field(ge=0, le=1, nullable=True, description=(
        "The truth: non-disease share of the absolute falls (modelling.explain.audit.reliance_verdict)."))
    truly_flagged: Series[bool] = pa.Field(description="Whether that share is above the threshold.")
    positioning_response: Series[float] = pa.Field(ge=0, nullable=True, description=(
        "Mean absolute change in predicted log BNP when the GVR radiographs are drawn again with neutral "
        "positioning (fidelity/summary.json positioning); not an intervention."))
    reliance_share_with_positioning: Series[float] = pa.Field(ge=0, le=1, nullable=True, description=(
        "Not the truth: the non-disease share with positioning_response counted as non-disease reliance."))
    flagged_with_positioning: Series[bool] = pa.Field(description="Whether that share is above the threshold.")
    audit_decision: Series[str] = pa.Field(isin=["flagged", "passed", "undecided"], description=(
        "The audit's decision from the explanations alone."))
    audit_basis: Series[str] = pa.Field(isin=["masks", "measured changes", "none"], description="Its evidence.")
    audit_non_disease_share: Series[float] = pa.Field(ge=0, le=1, nullable=True, description=(
        "N: the GVRs' change by area in the non-disease masks against the disease masks (it decides only "
        "when the region response O is undefined)."))
    audit_flagged: Series[bool] = pa.Field(description="Whether the decision is 'flagged'.")
    audit_region_share: Series[float] = pa.Field(ge=0, le=1, nullable=True, description=(
        "E, reported, not deciding (it decided from 2026-12-03 to 2026-12-04): the non-disease share of the "
        "model's response to its GVRs' change by region, the non-disease masks alone as the non-disease "
        "region, on GVRs shortened by audit.sparse_steps (modelling.explain.audit.region_effects)."))
    audit_outside_share: Series[float] = pa.Field(ge=0, le=1, nullable=True, description=(
        "O, what the audit decides on with masks: the same response with everything outside the disease "
        "and device masks as the non-disease region (the non-disease masks and where body mass, the "
        "projection and positioning show)."))

    class Config:
        unique = ["seed", "strength", "model_id"]


class ImageRationales(_Strict):
    """GVRs of a user's own image model (``gvr explain --image-model``): one row per rationale."""

    gvr_id: Series[str] = _id("Rationale identifier.", unique=True)
    image_id: Series[str] = _id("Radiograph explained (radiographs.image_id).")
    model_name: Series[str] = _id("The image model's name in the bundle.")
    method: Series[str] = pa.Field(isin=["direct", "surrogate"], description=(
        "direct: moved through the image model; surrogate: along a ridge regression of its scores on the codes."))
    threshold: Series[float] = pa.Field(description=(
        "The model's decision threshold in its output's units (ng/L for BNP, a probability, or as the model gives it)."))
    score_threshold: Series[float] = pa.Field(description=(
        "The same threshold on the score scale of the score columns (log for BNP in ng/L, logit for a probability)."))
    model_score_original: Series[float] = pa.Field(description=(
        "The model's score on the radiograph (log scale for BNP in ng/L, logit for a probability)."))
    start_score: Series[float] = pa.Field(description="The moving predictor's score at the start of the path.")
    end_score: Series[float] = pa.Field(description="The moving predictor's score at its end.")
    model_score_diseased: Series[float] = pa.Field(description="The model's score on the stored diseased reconstruction.")
    model_score_healthy: Series[float] = pa.Field(description="The model's score on the stored healthy reconstruction.")
    reached: Series[bool] = pa.Field(description="Whether the moving predictor crossed the threshold.")
    valid: Series[bool] = pa.Field(description=(
        "Whether the real model's decision is positive on the diseased and negative on the healthy reconstruction."))
    steps: Series[int] = pa.Field(ge=0, description="Steps taken.")
    latent_distance: Series[float] = pa.Field(ge=0, description="Euclidean distance moved in latent space.")
    image_distance: Series[float] = pa.Field(ge=0, description=(
        "Root mean square difference of the stored reconstructions (intensity 0-1)."))
    diseased_path: Series[str] = _path("PNG of the decoded original code.")
    healthy_path: Series[str] = _path("PNG of the decoded moved code.")
    overlay_path: Series[str] = _path("PNG of the signed difference over the original.")


class ReaderAssessments(_Strict):
    """Each reader's answer for each feature of each GVR, per reading round (unblinded)."""

    reader: Series[str] = _id("Reader identifier (A, B, ...).")
    round: Series[int] = pa.Field(ge=1, description="Reading round (1 or 2 in the paper).")
    gvr_id: Series[str] = _id("GVR read (gvr_index.gvr_id).")
    regime: Series[str] = pa.Field(isin=REGIMES, description="Regime of the model that made the GVR.")
    patient_id: Series[str] = _id("Patient of the radiograph (for the mixed model's random effect).")
    feature: Series[str] = pa.Field(
        str_matches=FEATURE_PATTERN,
        description="Feature scored; the paper's are " + ", ".join(READER_FEATURES) + ".",
    )
    present: Series[bool] = pa.Field(description="Whether the reader marked the feature as highlighted.")
    simulated: Series[bool] = pa.Field(description="True for simulated readers on the phantom cohort.")

    class Config:
        unique = ["reader", "round", "gvr_id", "feature"]


class ReadingKey(_Strict):
    """The key that unblinds a reading packet: kept outside the packet."""

    blinded_id: Series[str] = _id("Identifier shown to readers.", unique=True)
    gvr_id: Series[str] = _id("GVR behind it (gvr_index.gvr_id).", unique=True)
    model_id: Series[str] = _id("Predictor that made the GVR.")
    regime: Series[str] = pa.Field(isin=REGIMES, description="Regime of that predictor.")
    image_id: Series[str] = _id("Radiograph explained.")
    patient_id: Series[str] = _id("Patient of the radiograph.")
