# %% [markdown]
# ---
# title: "Beyond the paper"
# ---

# %% [markdown]
# Checks the paper could not make. On the phantom cohort we know what drives BNP and where each
# finding lies (the masks), so each explanation method can be scored against the truth; and the
# paper's own published Table 2 can be re-analysed from its counts.

# %%
#| echo: false
import numpy as np
import pandas as pd
from IPython.display import HTML, Markdown, display
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.paper_table2 import (STATED_INTER_KAPPA, STATED_INTRA_KAPPA, inter_kappa_compatibility,
                                   kappa_compatibility, load_paper_table2, reanalyse)
from analysis.table2 import FEATURE_LABELS, table2
from analysis.formatting import fmt_p, format_p, times
from analysis.manuscript import labelled, open_bundle, read_json, table_html

bundle = open_bundle()
# a real-data bundle has masks only where the user gave segmentations (`gvr cohort ingest --masks`)
has_faith = "tables/faithfulness.parquet" in bundle.files
user_masks = "tables/radiograph_masks.parquet" in bundle.files and "tables/phantom_truth.parquet" not in bundle.files
faith = bundle.read_table("faithfulness") if has_faith else None
audit = read_json(bundle, "baselines/audit.json") if "baselines/audit.json" in bundle.files else {}
METHOD_LABELS = {"gvr": "GVR", "gvr_surrogate": "GVR (surrogate)", "occlusion": "Occlusion", "integrated_gradients": "Integrated gradients",
                 "lime": "LIME", "gradcam": "Grad-CAM"}
SHARES = [c for c in faith.columns if c.startswith("share_")] if has_faith else []

# %% [markdown]
# ## Does the decoder draw the radiographs?
#
# Every GVR is a difference of two decoded images, so it can only be as sharp as the decoder. The
# paper showed samples; here the cardiothoracic ratio, measured by thresholding (Otsu's level; the
# lungs as the two largest dark regions inside the body; maximal cardiac over maximal thoracic
# width), is compared between real radiographs and as many decoder samples (@fig-decoder).

# %%
#| echo: false
training = read_json(bundle, "train/summary.json")
ratios = pd.read_csv(bundle.verify_file("train/ctr_real_vs_generated.csv"), keep_default_na=False,
                     na_values={"ctr": [""]})
ctr_summary = training["samples"]["cardiothoracic_ratio"]
reconstruction = training["reconstruction"]


def _ctr_text(side: dict) -> str:
    if not side.get("measured"):
        return f"not measurable on any of {side['n']}"
    return (f"median {side['median']:z.2f} (IQR {side['q1']:z.2f} to {side['q3']:z.2f}), measured on "
            f"{side['measured']} of {side['n']}")


ks = (f"; two-sample Kolmogorov-Smirnov D = {ctr_summary['ks_statistic']:z.3f}, P {fmt_p(ctr_summary['ks_p_value'])} "
      "(a test of difference: a large P does not show that the two are alike), 1-Wasserstein distance "
      f"{ctr_summary['wasserstein']:z.3f}" if "ks_p_value" in ctr_summary else "")
display(Markdown(
    f"Cardiothoracic ratio of real radiographs {_ctr_text(ctr_summary['real'])}; of decoder samples "
    f"{_ctr_text(ctr_summary['generated'])}{ks}. Held-out reconstructions (radiographs the decoder and "
    f"encoder never saw): peak signal-to-noise ratio (PSNR) {reconstruction['psnr_db']:z.1f} dB over "
    f"{reconstruction['held_out_radiographs']} radiographs."))
sampler = training["samples"].get("sampler") or {"name": "prior"}


if sampler.get("without_two_lungs") is not None:
    real_lungless = 1 - ctr_summary["real"]["measured"] / ctr_summary["real"]["n"]
    if sampler["name"] == "two-stage":
        how = (f"The samples' latent codes are drawn through a second small VAE fitted to the codes of the "
               f"{sampler['fitted_codes']:,} radiographs the decoder trained on (Dai and Wipf, ICLR 2019): an "
               "autoencoder's codes do not fill the N(0, I) prior, and decoded prior draws fall between them. "
               + (f"Each draw is then decoded and encoded again {times(sampler['cycles'])} (`decoder.sampler_cycles`), "
                  "since the encoder learned only real radiographs. " if sampler.get("cycles") else "") +
               f"Two separable lungs cannot be found in {sampler['without_two_lungs']:z.1%} of these samples, "
               f"against {sampler['prior_without_two_lungs']:z.1%} of as many prior draws")
    else:
        how = ("The samples' latent codes are drawn from the N(0, I) prior"
               + (f" and decoded and encoded again {times(sampler['cycles'])}" if sampler.get("cycles") else "")
               + f". Two separable lungs cannot be found in {sampler['without_two_lungs']:z.1%} of them")
    replay = (f" Each sample's code is {sampler['replay_ratio']:z.2f} times as far from its nearest training code as a "
              "held-out radiograph's code is (1: as new as an unseen radiograph; near 0: replayed)."
              if sampler.get("replay_ratio") is not None else "")
    realism = (read_json(bundle, "image_gvr/cnn/fidelity.json").get("realism", {})
               if "image_gvr/cnn/fidelity.json" in bundle.files else {})
    sample_sets, realism = realism.get("decoder_samples", {}), realism.get("sets", {})
    own_kid = realism.get(sample_sets.get(sampler["name"]), {}).get("kid")
    prior_kid = realism.get(sample_sets.get("prior"), {}).get("kid") if sampler["name"] != "prior" else None
    floor = realism.get("real decoder training radiographs, one half against the other (floor)", {}).get("kid")
    kid_text = ""
    if own_kid is not None and floor is not None:
        beside = f", as many prior draws at {prior_kid:z.4f}" if prior_kid is not None else ""
        kid_text = (" By a measure that does not look for lungs, the kernel inception distance on the features of "
                    f"the study's own image model (@tbl-realism), the samples stand at {own_kid:z.4f} from the "
                    f"radiographs the decoder trained on{beside}, and one half of those radiographs at {floor:z.4f} "
                    "from the other (0 in expectation for two sets from one distribution).")
    display(Markdown(f"{how} and {real_lungless:z.1%} of the real radiographs.{replay}{kid_text}"))
kept = training.get("disease_kept")
if kept and kept.get("median_r") is not None:
    display(Markdown(
        f"Does the generative model keep the disease? The phantom draws each of {kept['radiographs']} held-out "
        "radiographs with disease again without it (same noise); both pass through the encoder and the "
        "decoder, and the decoded difference is correlated, pixel by pixel, with the true one: median "
        f"r = {kept['median_r']:z.2f} (IQR {kept['q1_r']:z.2f} to {kept['q3_r']:z.2f}). A GVR can only show "
        "as much "
        "of the disease as this keeps."))
    ratio = kept.get("cardiothoracic_ratio") or {}
    shrinks = ratio.get("lower_without_disease", {})
    if ratio.get("measured_on_both") and shrinks.get("reconstructions", {}).get("share") is not None:
        display(Markdown(
            "The cardiothoracic ratio measured on each reconstruction against the same radiograph: median "
            f"difference {ratio['median_difference']:+z.3f} (median absolute {ratio['median_absolute_difference']:z.3f}) "
            f"over {ratio['measured_on_both']} measured on both. Where the truth shrinks an enlarged heart to a "
            f"ratio of 0.45, the thresholding measures it smaller on {shrinks['radiographs']['share']:z.0%} of "
            f"{shrinks['radiographs']['measured']} radiographs and on {shrinks['reconstructions']['share']:z.0%} of "
            f"{shrinks['reconstructions']['measured']} reconstructions: the measure's own sensitivity bounds "
            "what any GVR can be seen to do to the heart."))
    fluid = (kept.get("effusion") or {}).get("larger_without_effusion", {})
    if fluid.get("reconstructions", {}).get("share") is not None:
        display(Markdown(
            "Effusion, measured as aerated lung height over thoracic width on the effused side: removing the "
            f"effusion is measured as more aerated lung on {fluid['radiographs']['share']:z.0%} of "
            f"{fluid['radiographs']['measured']} radiographs and on {fluid['reconstructions']['share']:z.0%} of "
            f"{fluid['reconstructions']['measured']} reconstructions."))

# %%
#| label: fig-decoder
#| fig-cap: "The decoder: (a) samples from random latent codes (drawn as the text says); (b) held-out radiographs (top rows) above their reconstructions through the encoder and decoder; (c) the cardiothoracic ratio measured by thresholding on real radiographs and on decoder samples."
#| fig-alt: "Three panels: a grid of generated chest radiographs, a grid of real radiographs above their reconstructions, and two overlaid histograms of the measured cardiothoracic ratio for real and generated radiographs."
# the reconstructions are a wide strip (radiographs above their reconstructions): a row of their own, the width
# of the page, so that each radiograph is large enough to judge; the samples and the histogram above it
strip = bundle.read_image("train/reconstructions.png")
fig = Figure(figsize=(10, 4.4 + 10 * strip.shape[0] / strip.shape[1]), layout="constrained")
FigureCanvasAgg(fig)
layout = fig.subplot_mosaic([["a", "c"], ["b", "b"]], height_ratios=[4.4, 10 * strip.shape[0] / strip.shape[1]],
                            width_ratios=[1, 1.3])
axes = [layout["a"], layout["b"], layout["c"]]
for ax, (image, title) in zip(axes[:2], [(bundle.read_image("train/samples.png"), "(a) Decoder samples"),
                                         (strip, "(b) Held-out radiographs (top) and their reconstructions")]):
    ax.imshow(image, cmap="gray")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
ax = axes[2]
measured = ratios.dropna(subset=["ctr"])
bins = np.linspace(measured["ctr"].min(), measured["ctr"].max(), 25) if len(measured) else 10
for side, label in (("real", "Real"), ("generated", "Decoder samples")):
    values = measured.loc[measured["side"] == side, "ctr"]
    ax.hist(values, bins=bins, alpha=0.55, label=f"{label} (n = {len(values)})")
ax.set_xlabel("Cardiothoracic ratio (thresholding)")
ax.set_ylabel("Radiographs")
ax.set_title("(c) Cardiothoracic ratio", fontsize=9)
ax.legend(fontsize=8)
fig

# %% [markdown]
# ## Faithfulness against the masks
#
# For every GVR and every baseline on the same radiograph: the share of the explanation's absolute
# change (or attribution) inside each mask (heart, effusion, opacity, soft tissue, device, markers) and outside
# all of them; whether its maximum lies in a mask of a true BNP driver (pointing game); and the
# overlap (IoU) of its top pixels with the drivers' masks. Means per model and method in @tbl-faithfulness
# and @fig-faithfulness.

# %%
#| echo: false
if has_faith:
    summary = (faith.assign(method=faith["method"].map(lambda m: METHOD_LABELS.get(m, m)))
               .groupby(["regime", "method"], sort=True)
               .agg(explanations=("gvr_id", "size"), **{c: (c, "mean") for c in SHARES},
                    pointing_rate=("pointing_hit", "mean"), iou_top=("iou_top", "mean")))
    best = summary["share_disease"].groupby(level="regime").idxmax()
    display(Markdown("Highest mean share in the union of the heart, effusion and opacity masks: "
                     + "; ".join(f"{regime}: {idx[1]} ({summary.loc[idx, 'share_disease']:z.2f})"
                                 for regime, idx in best.items()) + "."))
    if user_masks:
        display(Markdown(
            f"This bundle holds real data with the user's segmentations (`gvr cohort ingest --masks`): the "
            f"{faith['gvr_id'].nunique()} GVRs of segmented radiographs are scored, and a radiograph's drivers are "
            "the disease masks it shows (heart, effusion, opacity), not features known to drive its BNP."))
else:
    display(Markdown("This bundle holds real data (`gvr cohort ingest`) without segmentations: it has no masks, "
                     "so the explanations are not scored against them here (`gvr cohort ingest --masks` gives "
                     "them)."))

# %%
#| label: tbl-faithfulness
#| tbl-cap: "Faithfulness of each explanation method against the masks (the phantom's, or on real data the user's segmentations), mean per model regime and method: shares of the explanation in each mask and outside all masks, pointing-game hit rate and top-pixel IoU with the true drivers' masks."
display(HTML(table_html(labelled(summary), digits=3))) if has_faith else None

# %%
#| label: fig-faithfulness
#| fig-cap: "Mean share of each explanation inside the heart, effusion and opacity masks, by method, for the correctly trained and the overfitted model."
#| fig-alt: "Grouped bar chart: for each explanation method, two bars (correctly trained and overfitted model) giving the mean share of the explanation inside the disease masks, between 0 and 1."
fig = None
if has_faith:
    fig = Figure(figsize=(7, 3.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    table = summary["share_disease"].unstack("regime")
    xs = np.arange(len(table))
    for k, regime in enumerate(table.columns):
        ax.bar(xs + (k - 0.5) * 0.38, table[regime].to_numpy(), width=0.38, label=regime)
    ax.set_xticks(xs, table.index)
    ax.set_ylim(0, 1)
    ax.set_ylabel("Mean share in disease masks")
    ax.legend(title="Model")
fig

# %% [markdown]
# ## The audit
#
# The audit asks of each model whether it relies mostly on what is not heart failure, and decides from
# its GVRs alone (`modelling/explain/audit.py`). With masks it asks the model itself: each diseased
# reconstruction gets the healthy one's pixels outside the disease and pacemaker masks only (the
# shortcut marker, skin markers and electrodes, soft tissue, and all that no mask covers, where body
# mass, the projection and positioning show), then inside the disease masks only (heart, effusion,
# opacity); both are encoded and predicted, and a model is flagged when more than half of the two falls
# in predicted log BNP comes from outside the disease masks (O). The GVRs it reads are first shortened:
# moved again as the explain stage moved them, then (where `audit.sparse_steps` is above 0) shrunk in pixels
# for that many steps while the prediction stays past the target, since a long move takes the disease along with whatever
# else the model leans on. O also counts positioning, which the truth leaves out. Two shares are shown
# beside it, not deciding: the same response with the non-disease masks alone as the non-disease
# region (E, which decided before O; it cannot see body mass beyond the soft tissue or the projection),
# and the share of the GVR change by area in the masks (N, which decided before E: a marker a fraction
# of a per cent of the film cannot hold half of a change by area however much the model leans on it).
# Each change of rule was judged on benchmark seeds never run before, by a rule written before the run
# (benchmarks/RESULTS.md). Without masks the audit flags a model when neither the
# cardiothoracic ratio nor the effusion measured on the reconstructions is lowered in more than half of
# the GVRs. On the phantom its decision is checked against the truth: the model's reliance measured by
# intervention, the same "more than half" of the fall in predicted log BNP coming from the shortcut,
# markers, projection and body mass rather than the heart, effusion and opacity (@tbl-audit).

# %%
#| echo: false
DECIDED_BY = {"outside_share": "O", "region_share": "E", "non_disease_share": "N"}
audit_rows = pd.DataFrame([{
    "Model": model, "GVRs": v["gvrs"], "Reached target (rate)": v["reached_rate"],
    "Basis": v["basis"],
    # which share decided is the audit's own record: without masks, or without a region response, another did
    "Decided by": DECIDED_BY.get(v.get("decided_by"), v.get("decided_by") or v["basis"]),
    "Response outside the disease and device masks, O": (v.get("region_effects") or {}).get("outside_share"),
    "O, GVRs as explained": (v.get("region_effects_as_explained") or {}).get("outside_share"),
    "Response to the non-disease masks alone, E": v.get("region_share"),
    "GVR change by area non-disease share, N": v["non_disease_share"],
    "Decision": v["decision"],
    "Reliance non-disease share": (v.get("reliance") or {}).get("share"),
    "Truth": (None if not v.get("reliance") else ("flag" if v["reliance"]["flagged"] else "pass")),
    "Agrees": v.get("agrees_with_reliance")} for model, v in sorted(audit.items())])
flagged = audit_rows.loc[audit_rows["Decision"] == "flagged", "Model"].tolist() if audit else []
read = "; ".join(f"`{m}`: {v['region_gvrs']}" for m, v in sorted(audit.items()) if v.get("region_gvrs"))
judged = {m: v["agrees_with_reliance"] for m, v in sorted(audit.items()) if v.get("agrees_with_reliance") is not None}
disagree = [f"`{m}` (the audit: {audit[m]['decision']}; the truth: "
            f"{'flag' if audit[m]['reliance']['flagged'] else 'pass'}, non-disease reliance share (of the falls' "
            "sizes, so a feature whose removal raises the prediction counts by how much) "
            f"{audit[m]['reliance']['share']:z.2f})" for m, agrees in judged.items() if not agrees]
unchecked = sorted({item for v in audit.values() for item in v.get("not_checked") or []})
display(Markdown(
    (f"Of the {len(audit_rows)} models audited, none could be decided: "
     + "; ".join(f"`{m}`: {v.get('rule') or v['decision']}" for m, v in sorted(audit.items())) + ". "
     if audit and all(v["decision"] == "undecided" for v in audit.values()) else
     f"Of the {len(audit_rows)} models audited, flagged: {', '.join(f'`{m}`' for m in flagged) if flagged else 'none'}. ")
    + (f"Against the truth by intervention the audit agrees on {sum(judged.values())} of {len(judged)} models"
       + (f"; it disagrees on {', '.join(disagree)}. " if disagree else ". ") if judged else "")
    + (f"What the audit's regions cannot see: {', '.join(unchecked)}. " if unchecked else "")
    + (f"The region response was read on {read}. " if read else "")
    + " ".join(f"`{m}`: {c}." for m, v in sorted(audit.items()) for c in v["caveats"])))

# %%
#| label: tbl-audit
#| tbl-cap: "The audit of each model (baselines/audit.json): the evidence it decided on and which share decided (with masks and a region response, O); the share of the model's own response to its shortened GVRs' change that comes from outside the disease and device masks (O), the same on the GVRs as explained, the same with the non-disease masks alone as the non-disease region (E), and the GVR change's non-disease share by area (N); its decision; and the truth by intervention with whether they agree."
display(HTML(table_html(audit_rows, digits=3, index=False)))

# %% [markdown]
# ## Shortcuts: does an explanation catch a model that learned one, and does the audit?
#
# The paper's strongest claim is that GVRs expose a model that learned the wrong thing. Here the
# phantom gives a share of the positive radiographs (the strength) a lead marker at the top of the
# film that BNP does not cause, and a small fixed share of the negatives the same, as FastDiME (Weng
# et al., ECCV 2024) does with 100, 75 and 50 %. One decoder and encoder are trained per seed; the predictors are
# fitted at every strength and explained with GVRs and every baseline. How much each model relies on
# the marker is measured by removing it (same noise) and predicting again; that is the truth each
# explanation's mass on the marker, and the audit's decision, are scored against
# (`gvr benchmark shortcuts`; `modelling/stages/shortcuts.py`).

# %%
#| echo: false
has_shortcuts = "shortcuts/summary.json" in bundle.files
if has_shortcuts:
    sc_summary = read_json(bundle, "shortcuts/summary.json")
    sc_shares = bundle.read_table("shortcut_shares")
    sc_models = bundle.read_table("shortcut_models")
    a = sc_summary["audit"]
    reqs = "; ".join(f"{name}: {'met' if r['met'] else 'NOT met'} ({r['flagged']} of {r['models']} flagged"
                     + (f", {r['undecided']} undecided" if r.get("undecided") else "") + ")"
                     for name, r in sc_summary["requirements"].items())
    undecided = sc_summary.get("undecided") or 0  # left out of the counts below
    agrees = sc_summary["audit_agrees"]
    rhos = ", ".join(f"{METHOD_LABELS.get(m, m)} {v['spearman_shortcut_mass_vs_reliance']:z.2f}"
                     if v["spearman_shortcut_mass_vs_reliance"] is not None else f"{METHOD_LABELS.get(m, m)} -"
                     for m, v in sc_summary["methods"].items())
    display(Markdown(
        f"{len(sc_summary['seeds'])} seed(s), strengths "
        f"{', '.join(f'{100 * x:z.0f} %' for x in sc_summary['strengths'])} of the positives, "
        f"{100 * sc_summary['negative_share']:z.0f} % of the negatives: {a['n'] + undecided} models"
        + (f", {undecided} of them undecided (no evidence to decide on) and left out of what follows" if undecided
           else "") + ". Against the "
        f"reliance measured by intervention the audit has {a['tp']} true and {a['fp']} false positives, "
        f"{a['tn']} true and {a['fn']} false negatives"
        + (f" (agreement {agrees:z.0%}). " if agrees is not None else ". ") +
        f"{reqs}. Spearman correlation, over every model and seed, of each method's mean share on the "
        f"marker with the model's measured reliance on it: {rhos}."))
    evidence = sc_summary.get("evidence") or {}  # results made before the region response was measured lack it
    # a summary made before O decided names no key; E decided then
    decides = sc_summary.get("decides", "region_share")
    if (evidence.get(decides) or {}).get("models"):

        def rho(v):
            return "-" if v["spearman_vs_reliance_share"] is None else f"{v['spearman_vs_reliance_share']:z.2f}"

        def flags(v):
            c = v["at_threshold"]
            return f"{c['tp']} true and {c['fp']} false positives, {c['fn']} false negatives"

        named = {"outside_share": "the share of the model's own response to its shortened GVRs' change that comes "
                                  "from outside the disease and device masks (O)",
                 "region_share": "the same response with the non-disease masks alone as the non-disease region (E)",
                 "area_share": "the share of the GVR change by area in the masks (N)"}
        parts = [f"{named[k]}{', which decides' if k == decides else ' (shown, not deciding)'}: Spearman "
                 f"{rho(v)}; at more than half it {'gives' if k == decides else 'would give'} {flags(v)} "
                 f"({v['models']} models)"
                 for k in sorted(named, key=lambda k: k != decides)
                 if (v := evidence.get(k) or (evidence.get("audit_share") if k == "area_share" else None))
                 and v.get("models")]
        display(Markdown("The audit's GVR shares against the truth's non-disease share, over the models: "
                         + "; ".join(parts) + "."))
else:
    display(Markdown("The shortcut benchmark was not run into this bundle: it trains a decoder and encoder "
                     "per seed, beyond the main job's time budget (benchmarks/RESULTS.md). `make shortcuts` (or "
                     "`gvr reproduce --shortcuts`) runs it into the bundle and renders this section; "
                     "`gvr benchmark shortcuts --out DIR` runs it on its own."))

# %%
#| label: fig-shortcuts
#| fig-cap: "Shortcut benchmark: each method's mean share of its explanation on the marker, over radiographs that carry it, against the strength (mean over seeds), and the models' measured reliance on the marker (dashed, right axis)."
#| fig-alt: "Line charts, one per regime: share of each explanation method's weight on the shortcut marker against the share of positives carrying it, with the models' measured reliance on the marker as a dashed line."
from analysis.shortcuts import figure as shortcut_figure

shortcut_figure(sc_shares, sc_models) if has_shortcuts else None

# %%
#| label: tbl-shortcuts
#| tbl-cap: "Shortcut benchmark per strength and regime (mean over seeds): the models' held-out AUC and measured reliance on the marker, the truth by intervention, the models flagged if patient positioning counted as a non-disease reliance (not the truth), the audit's decisions, the GVR change's share by area (N), the region response's share with the non-disease masks alone (E) and outside the disease and device masks (O; the audit decides by O since 2026-12-04, by E before), and each method's mean share on the marker among radiographs that carry it."
if has_shortcuts:
    per = sc_models.groupby(["strength", "regime"]).agg(
        models=("model_id", "size"), held_out_auc=("held_out_auc", "mean"), reliance=("shortcut_reliance", "mean"),
        truly_flagged=("truly_flagged", "sum"), audit_flagged=("audit_flagged", "sum"),
        area_share_N=("audit_non_disease_share", "mean"),
        **({"region_share_E": ("audit_region_share", "mean")} if "audit_region_share" in sc_models else {}),
        **({"outside_share_O": ("audit_outside_share", "mean")} if "audit_outside_share" in sc_models else {}))
    if "flagged_with_positioning" in sc_models:  # results of a benchmark run before it was measured lack it
        per.insert(per.columns.get_loc("truly_flagged") + 1, "flagged_with_positioning",
                   sc_models.groupby(["strength", "regime"])["flagged_with_positioning"].sum())
    marks = sc_shares.pivot_table(index=["strength", "regime"], columns="method",
                                  values="share_shortcut_carriers", aggfunc="mean")
    marks.columns = [f"share on marker: {METHOD_LABELS.get(c, c)}" for c in marks.columns]
    table_sc = per.join(marks).reset_index()
    table_sc["strength"] = (100 * table_sc["strength"]).round().astype(int).astype(str) + " %"
    table_sc = table_sc.rename(columns={
        "strength": "Strength", "models": "Models", "held_out_auc": "Held-out AUC",
        "reliance": "Reliance on the marker", "truly_flagged": "Flagged by the truth",
        "flagged_with_positioning": "Flagged, positioning counted", "audit_flagged": "Flagged by the audit",
        "area_share_N": "N: share by area", "region_share_E": "E: region response", "outside_share_O": "O: outside response"})
    display(HTML(table_html(labelled(table_sc), digits=3, index=False)))

# %% [markdown]
# ## An image model of our own, explained as a user's would be
#
# The paper could explain only predictors of the latent code, and suggested fitting one to any other
# model's outputs. Here an end-to-end CNN of log BNP (MONAI's network definitions, single channel, no
# downloaded weights; `image_model.width` narrows it for a CPU) is trained on the radiographs, exported (`torch.export`) with
# its spec, and explained exactly as `gvr explain --image-model` explains a user's model: GVRs moved
# through the CNN itself (direct), and along a ridge surrogate of its scores (the paper's suggestion).
# The CNN then judges every healthy reconstruction, and only those that change its decision are valid.
# The same radiographs are explained by the CNN's captum baselines and by the latent MLP's GVRs, and
# on the phantom all are scored against its truth (@tbl-image-model).

# %%
#| echo: false
has_cnn = "image_gvr/cnn/fidelity.json" in bundle.files
if has_cnn:
    cnn_model = read_json(bundle, "image_model/summary.json")
    cnn_fid = read_json(bundle, "image_gvr/cnn/fidelity.json")
    cnn_runs = {m: read_json(bundle, f"image_gvr/cnn/{m}/summary.json") for m in ("direct", "surrogate")}
    sur = cnn_runs["surrogate"].get("surrogate_fidelity") or {}
    auc_text = "-" if cnn_model["test_auc"] is None else f"{cnn_model['test_auc']:z.3f}"
    valid = {m: ("-" if r["valid"] is None else f"{r['valid']:z.0%}") for m, r in cnn_runs.items()}
    sur_auc = ("not defined (the CNN's decisions on the held-out radiographs are all one way)" if sur.get("auc") is None
               else f"{sur['auc']:z.3f}")
    display(Markdown(
        f"The CNN ({cnn_model['architecture']}, width {cnn_model['width']:g}, {cnn_model['parameters']:,} "
        f"parameters, {cnn_model['epochs']} epochs in {cnn_model['seconds']:z.0f} s) reaches a test AUC of "
        f"{auc_text} for BNP at or above the threshold. Of the {cnn_runs['direct']['positive_in_test']} test "
        f"radiographs it scores positive, {cnn_runs['direct']['explained']} were explained. The CNN confirms "
        f"{valid['direct']} of the direct GVRs and {valid['surrogate']} of the surrogate's. The surrogate "
        f"follows the CNN on held-out radiographs with R² {sur.get('r2', float('nan')):z.3f} and AUC "
        f"{sur_auc} against the CNN's own decisions."))
else:
    display(Markdown("The study's own image model is not in this bundle: `image_model.run` is false, or its "
                     "stages have not run (`gvr reproduce` runs them)."))

# %%
#| label: tbl-image-model
#| tbl-cap: "The same radiographs (those the CNN scores highest in the test split) explained for the CNN (GVRs direct and by surrogate, captum baselines) and for the latent MLP (its GVRs): median pixel correlation with the true disease-removal change, relevance mass accuracy, pointing game, and the non-disease share of the change by area among the masks (N as the audit computes it, here on these radiographs rather than the audit's, so it differs from the audit table's; it does not decide)."
if has_cnn and not cnn_fid["models"]:
    display(Markdown("No ground truth here (real data): the explanations of the CNN are not scored."))
elif has_cnn:
    cnn_rows = pd.DataFrame([{"Model": model, "Method": METHOD_LABELS.get(method, method.replace("_", " ")),
                              "Explained": v["explained"], "Median r with true change": v["median_true_change_r"],
                              "Relevance mass": v["relevance_mass"], "Pointing game": v["pointing_rate"],
                              "Non-disease mask share": v["non_disease_mask_share"]}
                             for model, methods in sorted(cnn_fid["models"].items())
                             for method, v in sorted(methods.items())])
    display(HTML(table_html(cnn_rows, digits=3, index=False)))

# %% [markdown]
# The same CNN gives the features for a realism measure: the kernel inception distance (KID; Bińkowski
# et al., ICLR 2018), an unbiased squared MMD under a cubic polynomial kernel, averaged over random
# subsets, on the CNN's penultimate features (no downloaded Inception weights): healthy reconstructions
# against real radiographs with BNP below the threshold, diseased ones against real radiographs at or
# above it, and the decoder's samples against the radiographs it trained on. Two disjoint halves of
# those real radiographs give each comparison's floor (@tbl-realism). It needs no ground truth, so a
# real-data bundle has it too.
# The CNN's own GVRs were moved through this very network, towards what it calls healthy, so their KID
# on its features is not an independent judgement; the latent models' GVRs are.

# %%
#| label: tbl-realism
#| tbl-cap: "Realism: KID (mean and SD over subsets) of each set of radiographs against real radiographs of the same kind (healthy: BNP below the threshold; diseased: at or above; decoder training: those the decoder and encoder trained on), on the study's CNN's penultimate features; 0 is indistinguishable."
if has_cnn and cnn_fid.get("realism"):
    realism_rows = pd.DataFrame([{"Set": name, "Against real": v["reference"], "n": v["n"],
                                  "Subset size": v["subset_size"], "KID": v["kid"], "SD": v["sd"]}
                                 for name, v in cnn_fid["realism"]["sets"].items()])
    display(HTML(table_html(realism_rows, index=False, float_format=lambda v: f"{v:z.4f}")))

# %% [markdown]
# ## The paper's Table 2, re-analysed
#
# The paper gives only marginal counts per reader and reading, typed from it into
# `analysis/data/paper_table2.csv`. Its note states: "The P value for the correct versus overfitted
# difference was .001 for cardiomegaly, .003 for pleural effusion, .38 for airspace opacity, and .001
# for no CHF features." We test the pooled counts with Fisher's exact test (ignoring the clustering
# by reader and radiograph, which the paper's mixed model accounts for), and find which of the
# stated kappas its counts allow at all. Ours, from this bundle, are beside them.

# %%
#| echo: false
paper = reanalyse(load_paper_table2())
counts = load_paper_table2()
ours = table2(bundle.read_table("reader_assessments"), mixed_models=False)
ours_pooled = ours.pooled.set_index(["regime", "feature"])
rows = []
for r in paper.pooled_tests.itertuples():
    pc = paper.pooled.set_index(["regime", "feature"])
    rows.append({
        "Feature": FEATURE_LABELS.get(r.feature, r.feature),
        "Paper: correct": pc.loc[("correct", r.feature), "display"],
        "Paper: overfitted": pc.loc[("overfitted", r.feature), "display"],
        "Paper: stated P (mixed model)": format_p(r.stated_p),
        "Paper counts: Fisher P": format_p(r.fisher_p),
        "Paper counts: odds ratio": round(r.odds_ratio, 2),
        "Ours: correct": (f"{int(ours_pooled.loc[('correct', r.feature), 'n_present'])}/"
                          f"{int(ours_pooled.loc[('correct', r.feature), 'n_total'])}"
                          if ("correct", r.feature) in ours_pooled.index else "not assessed"),
        "Ours: overfitted": (f"{int(ours_pooled.loc[('overfitted', r.feature), 'n_present'])}/"
                             f"{int(ours_pooled.loc[('overfitted', r.feature), 'n_total'])}"
                             if ("overfitted", r.feature) in ours_pooled.index else "not assessed"),
    })
reanalysis = pd.DataFrame(rows)
opacity = paper.pooled_tests.set_index("feature").loc["airspace_opacity"]
display(Markdown(
    f"For airspace opacity the paper states P {fmt_p(opacity['stated_p'])}; its own pooled counts give "
    f"Fisher's exact P {fmt_p(opacity['fisher_p'])} (@tbl-paper-table2), a P too small: it counts the "
    f"{int(opacity['n_correct'] + opacity['n_overfitted'])} readings as independent, when each GVR was read "
    f"{len(paper.per_reading[['reader', 'round']].drop_duplicates())} times ("
    f"{paper.per_reading['reader'].nunique()} readers, {paper.per_reading['round'].nunique()} readings), which the paper's "
    "mixed model accounts for, so the two P values are not directly comparable; a gap this large is still hard to "
    "reconcile with the stated P."))

# %%
#| label: tbl-paper-table2
#| tbl-cap: "The paper's pooled Table 2 counts with its stated P values, the same counts re-tested, and this bundle's pooled counts."
display(HTML(table_html(reanalysis, index=False)))

# %%
#| echo: false
READINGS = {"both readings": (1, 2), "first reading": (1,), "second reading": (2,)}
checks = [(kappa_compatibility(counts, reader, feature), {}) for reader, feature in STATED_INTRA_KAPPA]
checks += [(inter_kappa_compatibility(counts, feature),
            {name: inter_kappa_compatibility(counts, feature, rounds=rounds).compatible
             for name, rounds in READINGS.items() if rounds != (1, 2)})
           for feature in STATED_INTER_KAPPA]


def _yes_no(value):
    return "undecided" if value is None else "yes" if value else "no"


kappas = pd.DataFrame([{
    "Kappa": c.kind, "Reader(s)": c.reader, "Feature": FEATURE_LABELS.get(c.feature, c.feature),
    "Paper's stated kappa": c.stated_kappa, "Range the counts allow": f"{c.kappa_min:z.2f} to {c.kappa_max:z.2f}",
    "Nearest attainable": round(c.nearest_kappa, 3) if c.nearest_kappa is not None else None,
    "Attainable": _yes_no(c.compatible),
    **{f"Attainable, {name} only": _yes_no(other.get(name)) if other else "" for name in list(READINGS)[1:]}}
    for c, other in checks])
never = [c for c, other in checks if c.compatible is False and not any(other.values())]
pooled_only = [c for c, other in checks if c.compatible is False and any(other.values())]
display(Markdown(
    f"{len(never)} of {len(checks)} stated kappas cannot arise from the published counts whichever readings "
    f"they were computed on ({'; '.join(f'{c.kind} {FEATURE_LABELS.get(c.feature, c.feature)}' for c in never) or 'none'}). "
    f"{len(pooled_only)} more interobserver kappas cannot arise if, as we assume first, both readings were "
    f"pooled, but can from the first or the second reading alone "
    f"({'; '.join(FEATURE_LABELS.get(c.feature, c.feature) for c in pooled_only) or 'none'}); the paper does not "
    "say which it used (@tbl-paper-kappas). The counts allow only certain kappas (each 2 x 2 table's agreement "
    "is a whole number), so a stated kappa inside the range can still be unattainable: the nearest attainable "
    "value is shown."))

# %%
#| label: tbl-paper-kappas
#| tbl-cap: "The paper's stated intra- and interobserver kappas against the range its marginal counts allow (rounded to two decimals as printed)."
display(HTML(table_html(kappas, index=False)))
