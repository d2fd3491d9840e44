# %% [markdown]
# ---
# title: "Chest radiographs in congestive heart failure: visualizing neural network learning (reproduction)"
# ---

# %% [markdown]
# This is a reproduction of Seah et al., *Radiology* 2019;290:514-522 (doi:10.1148/radiol.2018180887),
# on the cohort of the study bundle: by default a synthetic phantom cohort, or a user's own radiographs
# (the next paragraph says which). Every number below is computed from the bundle when this page renders;
# where the paper's own values are shown, they are quoted as the paper prints them.
#
# The paper trained a generative model of chest radiographs and predictors of B-type natriuretic peptide
# (BNP) on its codes, and explained their predictions with Generative Visual Rationales (GVRs): a
# radiograph's code moved until disease is no longer predicted, decoded, and the difference overlaid.
# Abbreviations: MLP, multilayer perceptron; WGAN-GP, Wasserstein generative adversarial network with
# gradient penalty; WAE-MMD, Wasserstein autoencoder with a maximum mean discrepancy penalty.
#
# The bundle is `$GVR_BUNDLE`, else `study/` at the repository root (`make reproduce` builds it;
# a report never builds it itself, because building it trains networks: minutes on a CPU for the
# default profile, timed in `benchmarks/RESULTS.md`).
# The tables and figures are in [*Tables and figures*](tables_figures.html); checks the paper could not make
# are in [*Beyond the paper*](beyond.html), and every GVR held against the phantom's ground truth in
# [*GVRs against the truth*](fidelity.html)
# (on a phantom cohort only).

# %%
#| echo: false
import numpy as np
import pandas as pd
from IPython.display import HTML, Markdown, display

from analysis.errors import UndefinedStatisticError
from analysis.clustered_roc import clustered_auc
from analysis.roc import auc, auc_value
from analysis.table2 import FEATURE_LABELS
from analysis.formatting import fmt_ci, fmt_p, times
from analysis.manuscript import open_bundle, read_json, shown_path, table2_mixed, table_html
from analysis.mixed_models import formula_for, reported_p

bundle = open_bundle()
cohort = read_json(bundle, "cohort/summary.json")
predictions = bundle.read_table("predictions")
assessments = bundle.read_table("reader_assessments")
THRESHOLD = float(cohort["threshold_ng_l"])
COHORTS = {"phantom": "a synthetic phantom cohort with known ground truth (`gvr cohort synth`)",
           "real": "real radiographs and BNP results, ingested and pseudonymised (`gvr cohort ingest`); no ground "
                   "truth, so what needs the phantom's masks or truth is said to be absent"}
display(Markdown(f"Bundle: `{shown_path(bundle.root)}`, holding {COHORTS.get(bundle.origin, 'no cohort')}; BNP "
                 f"cutoff for congestive heart failure (CHF): {THRESHOLD:g} ng/L."))
if "config.yaml" in bundle.files:
    import yaml

    from analysis.manuscript import REPO_ROOT

    study = yaml.safe_load(bundle.verify_file("config.yaml").read_text())
    objective, move = study["decoder"]["objective"], study["gvr"]["move"]
    # the paper's sizes as the paper profile records them (configs/paper.yaml), for the deviations below
    paper = yaml.safe_load((REPO_ROOT / "configs" / "paper.yaml").read_text())
    sizes = [(f"`{part}.{key}` {study[part][key]:,}", f"{paper[part][key]:,}")
             for part, key in (("decoder", "latent_dim"), ("decoder", "feature_maps"), ("encoder", "feature_maps"),
                               ("decoder", "iterations"))
             if study.get(part, {}).get(key) is not None and study[part][key] != paper[part][key]]
    differs = [text for differs, text in (
        (study.get("image_size") != paper["image_size"],
         f"its radiographs are {study.get('image_size')} x {study.get('image_size')} px instead of "
         f"{paper['image_size']} x {paper['image_size']}"),
        (bool(sizes), "its networks are sized for a CPU: " + ", ".join(f"{ours} instead of {theirs}"
                                                                      for ours, theirs in sizes)),
        (objective != "wgan-gp", "its decoder and encoder are trained together as a Wasserstein autoencoder "
                                 "(WAE-MMD) instead of a WGAN-GP decoder followed by the encoder"),
        (study["decoder"].get("upsample", "transpose") == "resize",
         "its decoder doubles its resolution by upsampling and a 3 x 3 convolution instead of transposed "
         "convolutions"),
        (move == "pattern", "its GVRs move along the activation pattern (gradient times the codes' "
                            "covariance) instead of the gradient"),
        (move == "metric", "its GVRs take the steepest descent in the decoded picture's distance (the gradient "
                           "through the decoder's pullback metric) instead of the gradient"),
        (study["gvr"].get("reencode", False), "each move lowers what the model says of the decoded picture, "
                                              "encoded again, instead of the predictor's output on the code"),
        (float(study["gvr"].get("margin", 0.0)) != 0.0,
         f"each move aims {float(study['gvr'].get('margin', 0.0)):g} log BNP past the target instead of stopping at it"),
        (study["gvr"].get("selection", "highest") != "highest",
         f"the explained radiographs are drawn as `gvr.selection: {study['gvr'].get('selection')}` instead of those "
         "predicted highest"),
        (bool(study.get("predictors", {}).get("mlp_bias_at_mean", False)),
         "the MLP's output starts at its training rows' mean log BNP rather than near 0"),
        (int(study.get("predictors", {}).get("augment_copies", 0)) > 0,
         f"the predictors also fit {int(study['predictors']['augment_copies'])} moved copies of each training "
         "radiograph"),
        (float(study["decoder"].get("code_noise", 0.0)) > 0,
         f"the decoder learns to draw each code with noise of standard deviation "
         f"{float(study['decoder']['code_noise']):g} added (`decoder.code_noise`)"),
        (float(study["decoder"].get("edge_weight", 0.0)) > 0,
         f"the decoder's loss adds {float(study['decoder']['edge_weight']):g} times the squared error of differences "
         "between neighbouring pixels (`decoder.edge_weight`)"),
        (study["decoder"].get("sampler", "prior") != "prior",
         f"decoder samples are drawn through a `{study['decoder'].get('sampler')}` sampler instead of N(0, I) "
         "(only the samples; no network changes)"),
        (int(study["decoder"].get("sampler_cycles", 0)) > 0,
         f"each decoder sample's code is decoded and encoded again {times(int(study['decoder']['sampler_cycles']))} "
         "before it is drawn (only the samples)"),
        (bool(study["gvr"].get("sparse_steps")), "each change is then shrunk in pixels while the prediction "
                                                 "stays past the target (`gvr.sparse_steps`)"),
        ) if differs]
    display(Markdown(
        f"Profile `{study['profile']}`: " + ("the paper's method." if not differs else
                                              "as the paper profile (`configs/paper.yaml`), except that "
                                              + "; and ".join(differs)
                                              + " (why: [*GVRs against the truth*](fidelity.html), and the profile's comments).")))

# %% [markdown]
# ## Study sample
#
# The paper: "data in 4185 (80%) of 5232 patients used for training and data in 1047 (20%) of 5232
# [patients] used for testing"; the unlabelled radiographs trained the generative model.

# %%
#| echo: false
sets = cohort["sets"]
labelled = sets["train"]["patients"] + sets["test"]["patients"]
display(Markdown(
    f"Here the labelled data set holds {labelled:,} patients: {sets['train']['patients']:,} "
    f"({100 * sets['train']['patients'] / labelled:z.0f}%) for training, with "
    f"{sets['train']['radiographs']:,} radiographs, and {sets['test']['patients']:,} "
    f"({100 * sets['test']['patients'] / labelled:z.0f}%) for testing, with {sets['test']['radiographs']:,} "
    f"radiographs. The unlabelled data set holds {sets['unlabelled']['radiographs']:,} radiographs of "
    f"{sets['unlabelled']['patients']:,} patients."))

# %% [markdown]
# ## Prediction of BNP
#
# The paper: "the correctly trained model obtained a good AUC of 0.82 (Fig 2). The linear regression
# model applied to the latent space achieved the same AUC of 0.82. The overfitted model achieved an
# AUC of 0.99 because it memorized each radiograph during training. When tested on the previously
# unseen validation set, the overfitted model subsequently achieved an AUC of 0.75".

# %%
#| echo: false
ROLE_LABELS = {"test": "test set", "train": "own training data", "validation": "withheld validation set"}
# a patient may have several radiographs: DeLong's interval takes each as a patient, Obuchowski's takes the patient
patient_of = bundle.read_table("radiographs").set_index("image_id")["patient_id"]
rows, aucs, clustered, undefined = [], {}, {}, {}
for (model_id, role), group in predictions.groupby(["model_id", "role"], sort=True):
    y = group["bnp_true_ng_l"].to_numpy(float) >= THRESHOLD
    patients = patient_of.reindex(group["image_id"]).to_numpy()
    row = {"Model": model_id, "Predictor": group["predictor"].iloc[0], "Regime": group["regime"].iloc[0],
           "Evaluated on": ROLE_LABELS.get(role, role), "Cases": int(y.sum()), "Controls": int((~y).sum()),
           "Patients": int(pd.Series(patients).nunique())}
    try:
        result = auc(y, group["bnp_pred_ng_l"].to_numpy(float), ci="delong")
        by_patient = clustered_auc(y, group["bnp_pred_ng_l"].to_numpy(float), patients)
    except UndefinedStatisticError as exc:  # one class, or too few of one for an interval: the AUC may still be
        try:
            value = f"{auc_value(y, group['bnp_pred_ng_l'].to_numpy(float)):z.2f} (no interval: {exc})"
        except UndefinedStatisticError:
            value = f"not defined: {exc}"
        row["AUC (95% DeLong CI)"] = value
        row["95% CI, patients as clusters"] = "–"
        aucs[(model_id, role)] = None
        undefined[(model_id, role)] = value
    else:
        row["AUC (95% DeLong CI)"] = fmt_ci(result)
        row["95% CI, patients as clusters"] = f"{by_patient.ci_low:z.2f}, {by_patient.ci_high:z.2f}"
        aucs[(model_id, role)] = result
        clustered[(model_id, role)] = by_patient
    rows.append(row)
auc_table = pd.DataFrame(rows)


def said(model_id: str, role: str) -> str:
    result = aucs.get((model_id, role))
    if result is None:
        return undefined.get((model_id, role), "not available")
    return fmt_ci(result)


display(Markdown(
    f"At a cutoff BNP of {THRESHOLD:g} ng/L, the correctly trained multilayer perceptron achieved an AUC of "
    f"{said('mlp-correct', 'test')} on the test set; the linear regression model on the latent space "
    f"achieved {said('linear-correct', 'test')}. The overfitted model achieved "
    f"{said('mlp-overfitted', 'train')} on its own training data and {said('mlp-overfitted', 'validation')} "
    f"on the withheld validation set (@tbl-auc)."))

# The paper's AUCs, from the quotation above (Results, "Prediction of BNP").
PAPER_AUC = {("mlp-correct", "test"): 0.82, ("linear-correct", "test"): 0.82, ("mlp-overfitted", "train"): 0.99,
             ("mlp-overfitted", "validation"): 0.75}
inside, outside = [], []
for (model_id, role), stated in PAPER_AUC.items():
    result = aucs.get((model_id, role))
    if result is None or result.ci_high - result.ci_low == 0:
        continue
    words = f"`{model_id}` on its {ROLE_LABELS[role]} ({stated:z.2f} against {result.auc:z.2f} here)"
    (inside if result.ci_low <= stated <= result.ci_high else outside).append(words)
if inside or outside:
    display(Markdown(
        "The paper's AUC lies inside this study's 95% CI for " + ("; ".join(inside) or "no model")
        + (" and outside it for " + "; ".join(outside) if outside else "") + ". The CIs count radiographs as "
        "independent, though a patient may have several."))
else:
    display(Markdown("No AUC of this study has a confidence interval to hold the paper's AUCs against."))

# %%
#| label: tbl-auc
#| tbl-cap: "Area under the ROC curve of every predictor, by the radiographs it was evaluated on."
display(HTML(table_html(auc_table, index=False, escape=True)))
display(Markdown(f"Cases: radiographs with BNP at or above {THRESHOLD:g} ng/L (congestive heart failure); controls: "
                 "below it. AUC: area under the receiver operating characteristic (ROC) curve. DeLong's interval, as "
                 "the paper's, takes every radiograph as an independent subject; a patient with several radiographs "
                 "is counted as several, so the last column gives Obuchowski's interval for clustered data "
                 "(Biometrics 1997;53:567-578; `analysis.clustered_roc`), with each patient as one cluster."))

# %% [markdown]
# ## Blinded assessment of the GVRs
#
# The paper: "There was a higher frequency of cardiomegaly (153 [76.5%] of 200 vs 64 [32%] of 200;
# P < .001) and pleural effusion (47 [23.5%] of 200 vs 16 [8%] of 200; P = .003), highlighted by the
# correctly trained model compared with the overfitted model. [...] airspace opacity [...] (35 [17.5%]
# of 200 vs 12 [6%] of 200; P = .38). Overall, 127 (63.5%) of 200 GVRs from the overfitted model failed
# to highlight any features of CHF, compared with 40 (20%) of 200 for the correctly trained model
# (P < .001)." The P values are from mixed-effects logistic regression.

# %%
#| echo: false
from analysis.table2 import table2

t2 = table2(assessments, mixed_models=False)
pooled = t2.pooled.set_index(["regime", "feature"])
mixed = table2_mixed(bundle).set_index("feature")
readers = sorted(assessments["reader"].unique())


def count(regime: str, feature: str) -> str:
    if (regime, feature) not in pooled.index:  # a reading of one model's GVRs only
        return "none read"
    r = pooled.loc[(regime, feature)]
    return f"{int(r['n_present'])} [{100 * r['proportion']:z.1f}%] of {int(r['n_total'])}"


def lowered(feature: str) -> str:
    """A feature's label inside a sentence: "cardiomegaly", "no CHF features"."""
    words = FEATURE_LABELS.get(feature, feature).split()
    return " ".join(w if w.isupper() else w.lower() for w in words)


def odds_ratio(feature: str) -> str:
    if "odds_ratio" not in mixed or feature not in mixed.index:
        return ""
    if reported(feature)[1] != "Wald":  # the estimate ran off: no odds ratio or Wald interval means anything
        return "odds ratio not estimable (complete separation); "
    if not np.isfinite(mixed["odds_ratio"].get(feature, np.nan)):
        return ""
    r = mixed.loc[feature]
    return f"odds ratio {r['odds_ratio']:z.2f}, 95% Wald CI: {r['or_ci_low']:z.2f}, {r['or_ci_high']:z.2f}; "


def reported(feature: str) -> tuple[float, str]:
    """The feature's P value as Table 2 prints it: Wald, or likelihood-ratio under complete separation."""
    if "p_value" not in mixed or feature not in mixed.index:
        return np.nan, "Wald"
    return reported_p(mixed.loc[feature])


def disagreeing(feature: str) -> float | None:
    """The likelihood-ratio P where it falls on the other side of .05 from the reported Wald P, else None: the
    verdict then depends on the test, and the page says so."""
    p, test = reported(feature)
    lrt = mixed["lrt_p_value"].get(feature, np.nan) if "lrt_p_value" in mixed else np.nan
    if test == "Wald" and np.isfinite(p) and np.isfinite(lrt) and (p < 0.05) != (lrt < 0.05):
        return float(lrt)
    return None


sentences = []
for feature in pooled.index.get_level_values("feature").unique():
    # a feature whose model could not be fitted has its reason instead of a P value (Table 2)
    p, test = reported(feature)
    ptext = (("likelihood-ratio " if test != "Wald" else "") + f"P {fmt_p(p)}") if np.isfinite(p) else "P not estimable"
    if disagreeing(feature) is not None:
        ptext += f", likelihood-ratio P {fmt_p(disagreeing(feature))}: the two tests disagree at P < .05"
    sentences.append(f"{lowered(feature)}: {count('correct', feature)} vs "
                     f"{count('overfitted', feature)} ({odds_ratio(feature)}{ptext})")
simulated = bool(assessments["simulated"].all())
display(Markdown(
    f"{assessments['gvr_id'].nunique()} GVRs were read by {len(readers)} "
    + ("simulated " if simulated else "") + f"reader{'s' if len(readers) != 1 else ''} "
    f"({', '.join(readers)}) in {assessments['round'].nunique()} reading{'s' if assessments['round'].nunique() != 1 else ''}"
    + (" (on the phantom the readers are simulated, not radiologists: each marks a feature when the share of "
       "the GVR's change inside that feature's ground-truth mask, with the reader's own noise, passes the "
       "reader's threshold; `modelling.readers.simulated`)" if simulated else "")
    + ". Features highlighted by GVRs of the correctly trained versus the overfitted model, pooled over readers "
    "and readings: " + "; ".join(sentences) + ". The odds ratios (correct versus overfitted, for the same patient: "
    "conditional on the patient's random intercept, and so further from 1 than the crude ratio of the pooled counts "
    "where that intercept's variance is above 0) and P values are "
    f"from mixed-effects logistic regression, `{formula_for(assessments)}` (lme4's glmer), the P value a Wald "
    "test of the model term, or a likelihood-ratio test where one model's GVRs all show the feature or none do "
    "(complete separation, where the Wald test says nothing; Table 2 of [*Tables and figures*](tables_figures.html))."))

# %%
#| echo: false
from analysis.paper_table2 import load_paper_table2, reanalyse

paper_pooled = reanalyse(load_paper_table2()).pooled_tests.set_index("feature")
alike, unlike, depends = [], [], []
for feature, stated in paper_pooled.iterrows():
    if ("correct", feature) not in pooled.index or ("overfitted", feature) not in pooled.index:
        continue
    ours_more = pooled.loc[("correct", feature), "proportion"] > pooled.loc[("overfitted", feature), "proportion"]
    paper_more = stated["count_correct"] > stated["count_overfitted"]
    p, test = reported(feature)
    same_p = np.isfinite(p) and (p < 0.05) == (stated["stated_p"] < 0.05)
    lrt = disagreeing(feature)
    here = (f"P {fmt_p(p)}" if np.isfinite(p) else "P not estimable") if lrt is None else (
        f"Wald P {fmt_p(p)}, likelihood-ratio P {fmt_p(lrt)}")
    words = (f"{lowered(feature)} ({'more' if paper_more else 'less'} often with the correct model in the paper, "
             f"P {fmt_p(stated['stated_p'])} in its Table 2 note; here {'more' if ours_more else 'less'} often, "
             f"{here})")
    if lrt is not None and ours_more == paper_more:  # significant by one test and not by the other
        depends.append(words)
    else:
        (alike if ours_more == paper_more and same_p else unlike).append(words)
display(Markdown(
    "Against the paper, by direction and by significance at P < .05: "
    + (f"reproduced for {'; '.join(alike)}" if alike else "reproduced for no feature")
    + (f"; not reproduced for {'; '.join(unlike)}" if unlike else "")
    + (f"; reproduced or not depending on the test for {'; '.join(depends)}" if depends else "") + "."
    if alike or unlike or depends else "No feature was read on both models' GVRs, so none can be held against the paper."))
