# %% [markdown]
# ---
# title: "GVRs against the truth"
# ---

# %% [markdown]
# Abbreviations: GVR, Generative Visual Rationale; CTR, cardiothoracic ratio; PA and AP, posteroanterior
# and anteroposterior projections; IoU, intersection over union; R², coefficient of determination.
#
# The phantom draws every radiograph from known parameters and a noise seed, so it can draw the same
# radiograph again with one thing changed. Three ground truths follow (`gvr fidelity`):
#
# - **the true counterfactual**: the radiograph without its disease (a normal heart, no effusion, no
#   opacity; same positioning, markers, exposure and noise). Its difference from
#   the radiograph is the true change a GVR should resemble;
# - **the target counterfactual**: the visible terms of the phantom's BNP model (heart, effusions,
#   opacity, pacemaker, body mass) moved together just far enough that the model, without the
#   patient's and the visit's random effects, crosses the same target the GVR crossed;
# - **what each model relies on**: the fall in the model's predicted log BNP when one feature at a time
#   is removed (rendered again, encoded and predicted again). Each such rendering also gives that
#   feature's true change map, and every GVR's change (diseased - healthy) is decomposed onto those
#   maps by least squares: a coefficient of 1 means the GVR removes that feature as the intervention
#   does, 0 that it leaves it.
#
# A faithful GVR removes most of what its model relies on most. Every target of the fidelity issue is
# stated here whichever way it falls.

# %%
#| echo: false
from html import escape

import numpy as np
import pandas as pd
import yaml
from IPython.display import HTML, Markdown, display
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.fidelity_targets import SHARE, baseline_checks, fidelity_checks
from analysis.formatting import format_p
from analysis.manuscript import labelled, open_bundle, read_json, table_html
from analysis.regimes import ALPHA as REGIME_ALPHA
from analysis.regimes import FLOOR as REGIME_FLOOR
from analysis.regimes import FOLD as REGIME_FOLD
from analysis.regimes import regime_differences, regime_target

bundle = open_bundle()
has_truth = "tables/gvr_truth.parquet" in bundle.files
config = yaml.safe_load(bundle.verify_file("config.yaml").read_text()) if "config.yaml" in bundle.files else None
METHOD_LABELS = {"gvr": "GVR", "occlusion": "Occlusion", "integrated_gradients": "Integrated gradients",
                 "lime": "LIME", "gradcam": "Grad-CAM"}
if config:
    objective, move = config["decoder"]["objective"], config["gvr"]["move"]
    display(Markdown(
        f"This bundle's generative model: `decoder.objective: {objective}` "
        + ("(decoder and encoder trained together as a Wasserstein autoencoder, WAE-MMD; the paper trained a "
           "WGAN-GP decoder and then the encoder)" if objective == "autoencoder" else "(the paper's WGAN-GP)")
        + (", each doubling of its resolution an upsampling and a 3 x 3 convolution (`decoder.upsample: resize`; "
           "Odena et al. 2016) instead of the DCGAN's transposed convolution"
           if config["decoder"].get("upsample", "transpose") == "resize" else "")
        + (f", its decoder trained to draw each code with Gaussian noise of standard deviation "
           f"{float(config['decoder']['code_noise']):g} added (`decoder.code_noise`; a VAE's fixed posterior "
           f"variance), so that codes between the radiographs' also decode as radiographs"
           if float(config["decoder"].get("code_noise", 0.0)) > 0 else "")
        + f". GVR moves: `gvr.move: {move}` "
        + ("(gradient times the covariance of the codes the model trained on: the activation pattern of "
           "Haufe et al. 2014; the paper stepped along the gradient)" if move == "pattern"
           else f"(steepest descent in the decoded picture's distance, the gradient through the decoder's pullback "
                f"metric with a ridge of {config['gvr']['metric_ridge']:g} of its mean diagonal; the paper stepped "
                f"along the gradient)" if move == "metric"
           else "(the paper's gradient steps)")
        + (", lowering what the model says of the decoded picture, predictor(encoder(decoder(z))) "
           "(`gvr.reencode: true`, as Latent Shift does; the paper lowered the predictor's output on the code)"
           if config["gvr"].get("reencode") else ", lowering the predictor's output on the code (the paper's)")
        + (f", aiming {config['gvr']['margin']:g} log BNP past the target" if config["gvr"].get("margin") else "")
        + (f"; then {config['gvr']['sparse_steps']} steps shrink each change in pixels while the prediction stays "
           "past the target (`gvr.sparse_steps`; Wachter et al. 2018's L1 proximity, not in the paper)."
           if config["gvr"].get("sparse_steps") else ".")))
if not has_truth:
    display(Markdown("This bundle has no ground truth (real data, or the fidelity stage has not run): "
                     "nothing on this page can be measured."))

# %%
#| echo: false
if has_truth:
    fidelity = read_json(bundle, "fidelity/summary.json")
    truth = bundle.read_table("gvr_truth")
    reliance = bundle.read_table("model_reliance")
    lines = []
    def shown_share(v):
        return "not measurable" if v is None else f"{v:z.0%}"

    for model_id, m in fidelity["models"].items():
        lower = shown_share(m["ctr_lower"])
        rho = "undefined" if m["rank_agreement"] is None else f"{m['rank_agreement']:z.2f}"
        if m.get("rank_agreement_ci"):
            rho += " (95 % bootstrap interval over its GVR radiographs {:z.2f} to {:z.2f})".format(*m["rank_agreement_ci"])
        lines.append(
            f"- `{model_id}`: {m['gvrs']} GVRs"
            + ("" if m.get("valid") is None else
               f", {m['valid']:z.0%} valid (the model reads the stored diseased reconstruction, encoded again, at or "
               f"above the target and the healthy one below it)")
            + f"; pixel correlation with the true change median "
            f"{m['median_pixel_r']:z.2f} (IQR {m['q1_pixel_r']:z.2f} to {m['q3_pixel_r']:z.2f}), with the change "
            "the model's own reliance implies (each feature's "
            f"true change weighted by its drop on that radiograph) median {m['median_model_change_r']:z.2f}, with the "
            f"target counterfactual (the visible terms of the phantom's BNP model moved just far enough to cross the "
            f"GVR's target) median "
            f"{'undefined' if m.get('median_pixel_r_target') is None else format(m['median_pixel_r_target'], 'z.2f')}; "
            + (f"measured cardiothoracic ratio lower on the healthy reconstruction in {lower} of the "
               f"{m['ctr_measured_with_cardiomegaly']} GVRs with cardiomegaly measured on both"
               + ("; " if "ctr_small_effusion_measured" not in m  # a bundle measured before the count was kept
                  else f", in {shown_share(m.get('ctr_lower_small_effusion'))} of the "
                  f"{m['ctr_small_effusion_measured']} of them without a large effusion; "
                  if m["ctr_small_effusion_measured"] else ", none of them without a large effusion; ")
               if m["ctr_measured_with_cardiomegaly"] else "no GVR with cardiomegaly whose ratio reads on both; ")
            + (f"aerated lung on the effused side larger on the healthy reconstruction in "
               f"{shown_share(m.get('effusion_cleared'))} of the {m['effusion_measured']} GVRs with an effusion "
               "measured on both; " if m.get("effusion_measured") else "no GVR with an effusion measured on both; ")
            + f"Spearman's rho between what its GVRs remove and what it relies on {rho}.")
    display(Markdown("\n".join(lines)))
    defined = fidelity.get("definitions", {})
    if "healthy_cardiothoracic_ratio" in defined:
        display(Markdown(f"The true counterfactual's heart has a cardiothoracic ratio of at most "
                         f"{defined['healthy_cardiothoracic_ratio']:g}; an effusion is large where it fills at least "
                         f"{defined['large_effusion_fraction']:z.0%} of a hemithorax."))

    def judged(name, t):  # as `gvr fidelity` prints them: nothing to measure on is neither met nor missed
        name = name.replace("_", " ")  # feature and method names as words ("body mass", "integrated gradients")
        if not t.get("measurable", True):
            return f"- {escape(name)}: not measurable on this bundle (nothing to measure it on), neither met nor missed"
        value = "undefined" if t["value"] is None else f"{t['value']:z.2f}"
        return f"- {escape(name)}: {value}, " + ("met" if t["met"] else "**NOT met**")  # "P < 0.01" is no tag

    # the relevance mass target needs the baselines stage's scores of the same radiographs
    targets = fidelity_checks(fidelity) | (baseline_checks(read_json(bundle, "baselines/audit.json"))
                                           if "baselines/audit.json" in bundle.files else {})
    display(Markdown("The fidelity targets (`analysis.fidelity_targets`), judged on this bundle:\n\n" + "\n".join(
        judged(name, t) for name, t in targets.items())))
    ceiling = fidelity.get("measured_on_truth") or {}
    if ceiling:
        def of(v, n, what=""):  # "in 54% of 48 radiographs with cardiomegaly", or that none was measured
            if not n:
                return f"(no radiograph {what} measured)".replace("  ", " ")
            return f"in {shown_share(v)} of {n}" + (f" radiographs {what}" if what else "")
        display(Markdown(
            "The same measures read on the phantom's own counterfactuals of the same radiographs show how often "
            "each measure finds the change the truth makes (a GVR can score higher than the truth: the measure "
            "is coarse at this size, below, and a GVR changes more than the heart): "
            + "; ".join(f"`{model}`: the measured cardiothoracic ratio is lower on the disease-free "
                        f"counterfactual than on the original "
                        f"{of(c['ctr_lower'], c['ctr_measured_with_cardiomegaly'], 'with cardiomegaly')}"
                        f", and with only the heart made normal (effusion kept) "
                        f"{of(c['ctr_lower_heart_only'], c['ctr_heart_only_measured'])}, and with only the effusion "
                        f"removed (heart kept) "
                        f"{of(c.get('ctr_lower_effusion_only'), c.get('ctr_effusion_only_measured', 0))}; "
                        + (f"the ratio is lower on the disease-free counterfactual in "
                           f"{shown_share(c.get('ctr_lower_small_effusion'))} of the {c['ctr_small_effusion_measured']} "
                           f"with cardiomegaly and no large effusion; " if c.get("ctr_small_effusion_measured")
                           else "none of those measured has cardiomegaly without a large effusion; "
                           if "ctr_small_effusion_measured" in c else "")
                        + "the aerated lung is larger on the counterfactual "
                        + of(c["effusion_cleared"], c["effusion_measured"], "with an effusion")
                        for model, c in ceiling.items())
            + ". The thresholding measure (`modelling.cohort.ctr`) reads the heart's width only between aerated "
              "lung, so fluid beside the heart can read as heart: a measure that read the heart alone would find the "
              "ratio lower with only the effusion removed in none of the radiographs, and the shares above for that "
              "say how far this one departs from it on these radiographs. Where no large effusion hides the heart "
              "border it reads the heart on phantoms of known ratio (benchmarks/probe_ctr_rows.py), so the shares "
              "without one judge the GVRs more fairly; how many radiographs they rest on is given beside each."
            + "".join(f" For `{model}` the truth itself lowers the measured ratio in {shown_share(c['ctr_lower'])} "
                      f"of its radiographs with cardiomegaly, below the {SHARE:.0%} the target asks, so a GVR share above "
                      "that says the GVRs move this measure, not that they shrink the heart as the truth does; "
                      "the target's \"met\" is to be read with it."
                      for model, c in ceiling.items()
                      if c.get("ctr_lower") is not None and c["ctr_measured_with_cardiomegaly"]
                      and c["ctr_lower"] < SHARE)))

# %% [markdown]
# ## Gradient and pattern moves side by side
#
# The paper moved latent codes along the predictor's gradient. The gradient says which direction
# changes the prediction fastest; the activation pattern (the gradient times the covariance of the
# codes, Haufe et al. 2014) says along which direction the data vary when the prediction does.
# Either can lower the predictor's output on the moved code, as the paper did, or what the model says
# of the picture that code decodes to, encoded again ("re-encoded"; Latent Shift, Cohen et al. 2021,
# differentiates a classifier through its autoencoder the same way). Only the second is sure to change
# the model's mind about the image a reader sees: "valid" is the share whose stored healthy
# reconstruction, encoded again, is predicted below the threshold (and diseased one above). A third
# direction, the metric move, takes the steepest descent in the decoded picture's distance: the gradient
# through the decoder's pullback metric (Arvanitidis et al. 2018), so each step is (for a small ridge) the
# smallest change to the picture that lowers what the model says of it; it shows the model's own sensitivity, kept to what
# the decoder can draw, rather than the directions the data vary in. The fidelity stage moves the same
# radiographs each way, the bundle's own move scored the other way, and the metric move re-encoded, and
# judges each as the bundle's own GVRs (@tbl-moves).

# %%
#| label: tbl-moves
#| tbl-cap: "The same radiographs' GVRs moved along the gradient, the pattern and the metric, scored on the code or re-encoded: median pixel correlation with the true change and with the change the model's reliance implies, share reaching the threshold, share valid (the model's decision on the stored reconstructions, encoded again), share with a lower measured cardiothoracic ratio (of those with cardiomegaly measured on both), share with a smaller measured effusion (of those with one, measured on both), rank agreement with the model's reliance, and relevance mass accuracy (the mean share of the change inside the masks of what drives the radiograph's BNP, as the baselines are scored below; fidelity/summary.json)."
if has_truth and fidelity.get("moves_compared"):
    moves = pd.DataFrame([{"Model": model, "Move": how + (" (this bundle's)" if how == fidelity.get("move") else ""),
                           "Median pixel r": v["median_pixel_r"],
                           "Median r, model's change": v["median_model_change_r"], "Reached": v["reached"],
                           "Valid": v.get("valid"),
                           "CTR lower": v["ctr_lower"], "CTR measured": v["ctr_measured_with_cardiomegaly"],
                           "Effusion smaller": v.get("effusion_cleared"), "Effusion measured": v.get("effusion_measured"),
                           "Rank agreement": v["rank_agreement"], "Relevance mass": v.get("relevance_mass")}
                          for model, by_move in fidelity["moves_compared"].items() for how, v in by_move.items()])
    display(HTML(table_html(moves, digits=3, index=False)))

# %%
#| echo: false
if has_truth and fidelity.get("randomisation"):
    parts = []
    for model, m in fidelity["randomisation"].items():
        rho = "undefined" if m["median_spearman"] is None else f"{m['median_spearman']:z.2f}"
        parts.append(f"`{model}`: {m['moved']} of {m['radiographs']} radiographs moved, median Spearman {rho}")
    display(Markdown(
        "Model-parameter randomisation (Adebayo et al. 2018): the same moves through a copy of each predictor "
        "with fresh random weights, rescaled to the real predictions' mean and SD. How alike are its GVRs to "
        "the real ones (Spearman rank correlation of the absolute changes; 1 would mean the GVR does not depend "
        "on what the model learned)? " + "; ".join(parts) + "."))

# %% [markdown]
# ## What each model relies on, and what its GVRs show
#
# Per model, over the radiographs of its GVRs: the mean fall in predicted log BNP when each feature is
# removed (the reliance), and the GVRs' mean coefficient on that feature's true change (@tbl-reliance).

# %%
#| label: tbl-reliance
#| tbl-cap: "Reliance by intervention (mean fall in predicted natural-log BNP, with its SD) and the GVRs' mean coefficient on the same feature's true change map, per model (tables/model_reliance.parquet)."
if has_truth:
    shown = reliance.pivot(index=["feature", "intervention"], columns="model_id",
                           values=["mean_drop", "sd_drop", "gvr_mean_coefficient"])
    order = list(dict.fromkeys(reliance["feature"]))
    shown = shown.reindex(order, level="feature")
    shown = shown.rename(index=lambda v: v.replace("_", " "), level="feature")
    display(HTML(table_html(labelled(shown), digits=3)))

# %%
#| echo: false
if has_truth and fidelity.get("positioning"):
    def r2(v):
        return "undefined" if v is None else f"{v:z.2f}"
    display(Markdown(
        "The interventions leave out how each patient stands (rotation, shift and scale, drawn per patient). "
        "Drawn again with neutral positioning (same noise), the same radiographs' predictions move by "
        + "; ".join(f"{p['mean_absolute_fall']:z.2f} log BNP on average for `{model}` (mean fall {p['mean_fall']:+z.2f})"
                    for model, p in fidelity["positioning"].items())
        + ". Positioning can move a prediction either way, hence the mean of absolute changes. The GVRs' "
          "median coefficient on that change is "
        + " and ".join(f"{p['gvr_median_coefficient']:z.2f} (`{model}`)"
                       for model, p in fidelity["positioning"].items())
        + ", and the interventions' maps explain a median R² of "
        + " and ".join(f"{r2(p['median_r2_interventions'])} ({r2(p['median_r2_with_positioning'])} with "
                       f"positioning; `{model}`)" for model, p in fidelity["positioning"].items())
        + " of a GVR's change: the reliance table is the ground truth only of the features intervened on."))

# %%
#| echo: false
if has_truth and "non_disease_difference" in fidelity:
    diff = pd.DataFrame([{"Feature": d.feature.replace("_", " "), "Reliance: correct": d.reliance_correct,
                          "Reliance: overfitted": d.reliance_overfitted,
                          "GVR coefficient: correct": d.coefficient_correct,
                          "GVR coefficient: overfitted": d.coefficient_overfitted,
                          "Mann-Whitney P": format_p(d.p) if d.p is not None else "undefined",
                          "Reliance differs": "yes" if d.differs else "no",
                          "GVRs differ the same way": "yes" if d.same_way else "no"}
                         for d in regime_differences(fidelity["non_disease_difference"])])
    target = regime_target(regime_differences(fidelity["non_disease_difference"]))

    def listed(names):
        return ", ".join(n.replace("_", " ") for n in names) or "none"

    differing = target["differing"]
    display(Markdown(
        "Where the two models' reliance on a feature that is not disease differs, do their GVRs differ the "
        f"same way (@tbl-regimes)? The reliance differs (at least {REGIME_FOLD:g}-fold, and by a fall of at least "
        f"{REGIME_FLOOR:g} log BNP in one model; `analysis.regimes`) on {len(differing)} of {len(diff)} "
        f"features ({listed(differing)}). The GVRs differ the same way with P < {REGIME_ALPHA:g} on "
        f"{len(target['met_on'])} of them ({listed(target['met_on'])}); the same way without it on "
        f"{listed(target['same_way_only'])}; the other way, or not at all, on {listed(target['opposite'])}. "
        + f"The target (the same direction with P < {REGIME_ALPHA:g} on each) is "
        + ("met." if target["met"] else "NOT met.")))

# %%
#| label: tbl-regimes
#| tbl-cap: "Features that are not disease: each model's reliance beside its GVRs' mean coefficient, and a two-sided Mann-Whitney test of the two models' per-GVR coefficients."
if has_truth and "non_disease_difference" in fidelity:
    display(HTML(table_html(diff, digits=3, index=False)))

# %% [markdown]
# ## What the generative model shows of each feature, and what removing it costs a move
#
# A GVR is drawn by the decoder, so it can remove a feature only as the encoder and decoder represent it,
# and a pattern move is the steepest descent of the prediction in the metric of the codes' covariance, so
# it removes first what is cheap in that metric. Per model, over its GVR radiographs, the fidelity stage
# encodes and decodes each radiograph and its intervened rendering: the decoded change is correlated with
# the true one ("shown r") and decomposed onto every feature's true change map, as a GVR is ("shown as
# itself", 1 where the decoder removes the feature as the truth does, and the largest other feature it
# shows instead). The squared Mahalanobis length of the code change, under the covariance of the codes
# the model trained on, is what removing the feature costs a pattern move. Steepest descent with such a
# cost removes each feature in proportion to its fall in prediction over its cost (@tbl-representation).

# %%
#| echo: false
if has_truth and fidelity.get("representation"):
    def rho(v):
        return "undefined" if v is None else f"{v:z.2f}"
    display(Markdown(
        "Spearman's rho between the GVRs' mean coefficients and the model's reliance over each feature's cost: "
        + "; ".join(f"{rho(rep['rank_agreement_per_cost'])} for `{model}` (against the reliance itself "
                    f"{rho(fidelity['models'][model]['rank_agreement'])}; on the changes as the decoder shows them "
                    f"instead of the true ones, {rho(rep['rank_agreement_on_shown'])})"
                    for model, rep in fidelity["representation"].items())
        + ". Where the first is high and the second low, the GVRs remove what the model relies on as cheaply as the "
          "move's metric allows, and a feature the model leans on but that is dear in that metric is left in place."
        + ("" if str(fidelity.get("move", "")).startswith("pattern") else
           f" This bundle's GVRs move along the {fidelity.get('move')}, not the pattern: the cost is not their own "
           "move's, only the pattern's.")))

# %%
#| label: tbl-representation
#| tbl-cap: "Per model and feature, on its GVR radiographs that the intervention changes: the median pixel correlation of the decoded change with the true change, the decoded change's coefficient on the feature's own true map and the largest on another's, the squared Mahalanobis length of the code change (the cost to a pattern move), the model's reliance (mean fall in predicted log BNP), reliance over cost, and the GVRs' mean coefficient on the true map (fidelity/summary.json, 'representation')."
if has_truth and fidelity.get("representation"):
    def other(row, feature):
        name, value = max(((g, v) for g, v in row["shown"].items() if g != feature), key=lambda gv: abs(gv[1]),
                          default=("none", float("nan")))
        return f"{name.replace('_', ' ')} {value:z.2f}"
    representation = pd.DataFrame([
        {"Model": model, "Feature": f.replace("_", " "), "Radiographs": row["radiographs"], "Shown r": row["shown_r"],
         "Shown as itself": row["shown"][f], "Shown as another": other(row, f),
         "Squared code length": row["squared_code_length"], "Reliance": row["reliance"],
         "Reliance per cost": row["reliance"] / row["squared_code_length"] if row["squared_code_length"] else None,
         "GVR coefficient": row["gvr_coefficient"]}
        for model, rep in fidelity["representation"].items() for f, row in rep["features"].items()])
    display(HTML(table_html(representation, digits=3, index=False)))

# %% [markdown]
# ## Counterfactual and attribution metrics side by side
#
# The same radiographs explained by the GVR and by each baseline, scored against the driving masks
# (pointing game, Zhang et al. 2018; relevance mass and rank accuracy, Arras et al. 2022, named as in
# Quantus; top-k IoU), by sparseness (Gini index, Chalasani et al. 2020) and by the Pearson correlation
# of the signed map with the true change (@tbl-metrics). Validity ("Reached": the share of GVRs whose
# moved code crosses the target; "Valid": the share whose stored reconstructions, encoded again, the
# model judges on either side of it) and proximity (latent and image distance; Wachter et al. 2018)
# apply to GVRs alone, and so does realism: the kernel inception distance (KID; Bińkowski et al. 2018) of the healthy
# reconstructions against real radiographs below the threshold, on the penultimate features of the
# study's own image model (no downloaded Inception weights; "Beyond the paper" gives the floor and
# the diseased reconstructions).

# %%
#| label: tbl-metrics
#| tbl-cap: "Per model and method: means of the mask metrics and sparseness, median correlation with the true change; for GVRs, the share reaching the target, the share valid (the model's decision on the stored reconstructions, encoded again), median proximity and, where the study's image model exists, the healthy reconstructions' KID (tables/faithfulness.parquet, tables/gvr_index.parquet, image_gvr/cnn/fidelity.json)."
if has_truth and "tables/faithfulness.parquet" in bundle.files:
    faith = bundle.read_table("faithfulness")
    metrics = (faith.assign(method=faith["method"].map(lambda m: METHOD_LABELS.get(m, m)))
               .groupby(["model_id", "method"], sort=True)
               .agg(explanations=("gvr_id", "size"), pointing_game=("pointing_hit", "mean"),
                    relevance_mass=("relevance_mass", "mean"), relevance_rank=("relevance_rank", "mean"),
                    iou_top=("iou_top", "mean"), sparseness=("sparseness", "mean"),
                    true_change_r=("true_change_r", "median")))
    index = bundle.read_table("gvr_index")
    gvr = index[index["kind"] == "gvr"].groupby("model_id").agg(
        reached=("reached", "mean"), latent_distance=("latent_distance", "median"),
        image_distance=("image_distance", "median"))
    if "valid" in truth.columns:
        gvr["valid"] = truth.groupby("model_id")["valid"].mean()
    if "image_gvr/cnn/fidelity.json" in bundle.files:
        realism = read_json(bundle, "image_gvr/cnn/fidelity.json").get("realism", {}).get("sets", {})
        gvr["healthy_kid"] = [realism.get(f"{m} GVRs: healthy reconstructions", {}).get("kid", np.nan)
                              for m in gvr.index]
    for column in gvr.columns:
        metrics[column] = [gvr.loc[m, column] if method == "GVR" else np.nan for m, method in metrics.index]
    display(HTML(table_html(labelled(metrics), digits=3)))  # a dash where a column is the GVRs' alone
    best = metrics["relevance_mass"].groupby(level="model_id").idxmax()

    def highest(model, idx):
        mass = metrics.loc[idx, "relevance_mass"]
        if idx[1] == "GVR":
            return f"`{model}`: the GVRs ({mass:z.2f})"
        return f"`{model}`: {idx[1]} ({mass:z.2f}; the GVRs {metrics.loc[(model, 'GVR'), 'relevance_mass']:z.2f})"
    display(Markdown("Highest relevance mass accuracy: " + "; ".join(highest(m, idx) for m, idx in best.items()) + "."))

# %% [markdown]
# ## The same radiographs: truth, GVR and baselines
#
# For the first GVRs of each model (by identifier) whose radiograph has cardiomegaly: the
# radiograph, its true disease-free counterfactual, the true change, and the GVR's change, each signed
# change on its own symmetric colour scale (red: denser with disease / in the diseased reconstruction;
# a GVR moves only as far as the threshold, so its change is fainter than the whole disease, and the
# correlation r is blind to scale); then the baselines of the same radiograph (@fig-truth).

# %%
#| label: fig-truth
#| fig-cap: "Rows: radiographs explained by each model. Columns: the radiograph, its true disease-free counterfactual (same noise), the true change, the GVR's change (diseased - healthy), and the panel of baselines (original, GVR overlay, occlusion, integrated gradients (IG), LIME, Grad-CAM). Each change map has its own symmetric colour scale: red where the image is brighter before the change (density removed), blue where it is darker, white for no change; r is the pixel correlation of the GVR's change with the true one."
#| fig-alt: "A grid of small chest radiographs: per row an original, its disease-free version, two red-blue difference maps, and a strip of six explanation maps."
if has_truth:
    picks = (truth[truth["cardiomegaly"]].sort_values("gvr_id", kind="stable").groupby("model_id").head(2))
    changes = bundle.read_array("arrays/true_change.npy")
    # eleven inches over width ratios summing to nine: each square panel 11/9 in, and two lines of title above it
    fig = Figure(figsize=(11, (11 / 9 + 0.5) * max(len(picks), 1)), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.subplots(max(len(picks), 1), 5, width_ratios=[1, 1, 1, 1, 5], squeeze=False)
    for row, pick in zip(grid, picks.itertuples()):
        original = bundle.read_image(f"gvr/{pick.gvr_id}/original.png")
        diseased = bundle.read_image(f"gvr/{pick.gvr_id}/diseased.png").astype(np.float32)
        healthy = bundle.read_image(f"gvr/{pick.gvr_id}/healthy.png").astype(np.float32)
        true = changes[pick.change_row]
        gvr_change = (diseased - healthy) / 255.0
        row[0].imshow(original, cmap="gray")
        row[1].imshow(bundle.read_image(pick.counterfactual_path), cmap="gray")
        for ax, change in ((row[2], true), (row[3], gvr_change)):
            scale = max(float(np.abs(change).max()), 1e-6)
            ax.imshow(change, cmap="RdBu_r", vmin=-scale, vmax=scale)
        panel = f"baselines/{pick.gvr_id}.png"
        if panel in bundle.files:
            row[4].imshow(bundle.read_image(panel))
        for ax, title in zip(row, [f"{pick.model_id}\n{pick.image_id}", "True\ncounterfactual", "True\nchange",
                                   f"GVR change\n(r = {pick.pixel_r:z.2f})",
                                   "\noriginal | GVR | occlusion | IG | LIME | Grad-CAM"]):
            ax.set_title(title, fontsize=8)
            ax.set_axis_off()
    display(fig)
