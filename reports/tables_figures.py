# %% [markdown]
# ---
# title: "Tables and figures"
# ---

# %% [markdown]
# The paper's tables and figures, regenerated from the study bundle (`$GVR_BUNDLE`, else `study/`).
# Which radiographs are shown is decided here by rule, not by hand: the paper's figures were
# "selected"; ours take the GVRs with the highest predicted BNP (the paper's Figures 1 and 3), the first
# radiograph by id that both models explained (Figure 4), and inverse GVRs in radiograph order (Figures
# 5 and 6). Headings name the paper's tables and figures; the numbered captions count this page's own.

# %%
#| echo: false
from IPython.display import HTML, Markdown, display
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.figure2 import figure2
from analysis.formatting import render_html as table_html
from analysis.table1 import table1
from analysis.table2 import mixed_p_sentence, table2
from analysis.formatting import fmt_ci
from analysis.manuscript import (MIXED_TABLE, figure_from_images, image_html, open_bundle, read_json,
                                 table2_mixed)

bundle = open_bundle()
cohort = read_json(bundle, "cohort/summary.json")
THRESHOLD = float(cohort["threshold_ng_l"])
gvrs = bundle.read_table("gvr_index")
recorded = set(bundle.files)
forward = gvrs[gvrs["kind"] == "gvr"].sort_values(["start_pred_ng_l", "gvr_id"], ascending=[False, True])
inverse = gvrs[gvrs["kind"] == "inverse"].sort_values(["image_id", "target_bnp_ng_l"])
if forward.empty:
    raise RuntimeError(f"{bundle.root / 'tables/gvr_index.parquet'} lists no GVR (kind 'gvr'); rerun the explain stage")

# %% [markdown]
# ## The paper's Table 1

# %%
#| label: tbl-table1
#| tbl-cap: "Characteristics of the study sample (training and test sets of the labelled data set, and the unlabelled data set)."
t1 = table1(*(bundle.read_table(n) for n in ("patients", "radiographs", "splits", "pairing")), threshold=THRESHOLD)
display(HTML(table_html(t1.display, caption="", notes=t1.notes)))

# %% [markdown]
# ## The paper's Figure 1
#
# The GVR creation process on one of the study's radiographs (@fig-gvr-process): the original radiograph is encoded,
# its latent vector is moved until the predictor no longer predicts disease, the original and moved
# vectors are decoded into "diseased" and "healthy" reconstructions, and their difference is
# superimposed on the original (orange: density removed; purple: density added).

# %%
#| echo: false
example = forward.sort_values("regime", kind="stable").iloc[0]  # a correct-model GVR where there is one
display(Markdown(
    f"Example: GVR `{example['gvr_id']}` of model `{example['model_id']}`; predicted BNP moved from "
    f"{example['start_pred_ng_l']:z.0f} to {example['end_pred_ng_l']:z.0f} ng/L (target "
    f"{example['target_bnp_ng_l']:g} ng/L) in {int(example['steps'])} step(s)."))

# %%
#| label: fig-gvr-process
#| fig-cap: "Generative Visual Rationale (GVR) creation process: original radiograph, diseased reconstruction (original latent vector decoded), healthy reconstruction (latent vector moved until disease is no longer predicted) and the GVR (difference superimposed on the original: orange where density is removed on the way to healthy, purple where it is added; the two squares at the top left are this key)."
#| fig-alt: "Four chest radiograph panels in a row: the original image, its diseased reconstruction, its healthy reconstruction, and the original with the difference overlaid in orange and purple."
figure_from_images(bundle, [[(example["original_path"], "Original"), (example["diseased_path"], "Diseased reconstruction"),
                             (example["healthy_path"], "Healthy reconstruction"), (example["overlay_path"], "GVR")]])

# %%
#| echo: false
display(HTML("<p>Movie of this radiograph moving from “diseased” to “healthy”, each frame with the model's "
             "predicted BNP:</p>"
             + image_html(bundle, example["movie_path"], alt=f"Animated GIF of GVR {example['gvr_id']}", width=256)))

# %% [markdown]
# ## The paper's Figure 2

# %%
#| echo: false
predictions = bundle.read_table("predictions")
try:
    f2 = figure2(predictions, threshold=THRESHOLD)
except ValueError as exc:  # one class among the test rows, or no correct-regime model
    f2 = None
    # Panel A still shows what the bundle holds; panel B says why there is no ROC curve.
    fig2 = Figure(figsize=(10, 4.6), layout="constrained")
    FigureCanvasAgg(fig2)
    ax_a, ax_b = fig2.subplots(1, 2)
    # the model Figure 2 would show (the correct MLP, as the paper's), not every correct-regime model at once
    shown = predictions[(predictions["model_id"] == "mlp-correct") & (predictions["role"] == "test")]
    ax_a.scatter(shown["bnp_true_ng_l"], shown["bnp_pred_ng_l"], s=10, alpha=0.5)
    ax_a.set_xscale("log")
    ax_a.set_yscale("log")
    ax_a.set_xlabel("Actual BNP (ng/L)")
    ax_a.set_ylabel("Predicted BNP (ng/L)")
    ax_a.set_title("A", loc="left", fontweight="bold")
    ax_b.set_axis_off()
    ax_b.set_title("B", loc="left", fontweight="bold")
    ax_b.text(0.5, 0.5, f"No ROC curve:\n{exc}", ha="center", va="center", wrap=True)
    display(Markdown(f"Figure 2's ROC curve cannot be drawn from this bundle ({exc}); panel A shows the correct "
                     "MLP's test predictions."))
else:
    fig2 = f2.figure
    display(Markdown(f"Model `{f2.model_id}` on its {f2.role} radiographs ({f2.n}): at a cutoff of {THRESHOLD:g} "
                     f"ng/L, an AUC of {fmt_ci(f2.auc)} (@fig-figure2)."))

# %%
#| label: fig-figure2
#| fig-cap: "A, Scatterplot of predicted B-type natriuretic peptide (BNP) versus actual BNP on a logarithmic scale for the correctly trained model (test set). B, Receiver operating characteristic (ROC) curve at the BNP cutoff for congestive heart failure."
#| fig-alt: "Two panels: left, predicted against actual BNP on logarithmic axes with dashed lines at the cutoff; right, the ROC curve with its AUC and DeLong confidence interval in the legend."
fig2

# %% [markdown]
# ## The paper's Figure 3
#
# GVRs for radiographs predicted to indicate a high BNP (@fig-gallery): the correctly trained model
# (top row) and the overfitted model (bottom row), the three GVRs of each with the highest predicted BNP.

# %%
#| label: fig-gallery
#| fig-cap: "GVRs of radiographs predicted to indicate a high BNP level, correctly trained model (top row) and overfitted model (bottom row). Orange: density the model would remove; purple: density it would add, to remove the disease prediction (the key's two squares at each panel's top left). Titles give the model's predicted BNP."
#| fig-alt: "Two rows of chest radiographs with orange and purple overlays; the top row from the correctly trained model, the bottom row from the overfitted model, each panel titled with its radiograph and predicted BNP."
gallery = []
for regime in ("correct", "overfitted"):
    chosen = forward[forward["regime"] == regime].head(3)
    gallery.append([(r.overlay_path, f"{regime.capitalize()} model: {r.image_id}\npredicted {r.start_pred_ng_l:z.0f} ng/L")
                    for r in chosen.itertuples()] or [(forward.iloc[0]["original_path"], f"no {regime} GVR")])
figure_from_images(bundle, gallery)

# %% [markdown]
# ## The paper's Table 2

# %%
#| echo: false
assessments = bundle.read_table("reader_assessments")
t2 = table2(assessments, mixed_models=False)
mixed = table2_mixed(bundle)
p_note = mixed_p_sentence(mixed, list(mixed["feature"]), source=f" test of the model term, from {MIXED_TABLE}",
                          name=lambda f: f.replace("_", " ").replace("chf", "CHF"), reasons=True)
if "caution" in mixed.columns:  # lme4's messages and what they mean for each P value
    cautions = mixed[mixed["caution"].fillna("").astype(str) != ""]
    if len(cautions):
        p_note += " lme4 reported, " + "; ".join(
            f"for {r.feature.replace('_', ' ')}: {' '.join(str(r.warnings).split())} ({r.caution})"
            for r in cautions.itertuples()) + "."
simulated = bool(assessments["simulated"].all())

# %%
#| label: tbl-table2
#| tbl-cap: "Features of congestive heart failure highlighted by GVRs of the correctly trained and the overfitted model, per reader and reading, with the pooled result."
notes = t2.notes + (p_note,) + (("The readers are simulated on the phantom's masks (no human read these GVRs).",)
                                 if simulated else ())
display(HTML(table_html(t2.display, caption="", notes=notes)))

# %% [markdown]
# ## The paper's Figure 4
#
# (a) One radiograph under both models (@fig-both-models); (b) its GVR beside occlusion, integrated
# gradients, LIME and Grad-CAM (@fig-baselines).

# %%
#| echo: false
regimes_per_image = forward.groupby("image_id")["regime"].nunique()
both = sorted(regimes_per_image[regimes_per_image == 2].index)
if both:
    pair = [forward[(forward["image_id"] == both[0]) & (forward["regime"] == g)].iloc[0] for g in ("correct", "overfitted")]
    display(Markdown(f"Radiograph `{both[0]}` has GVRs from both models."))
else:
    pair = [forward[forward["regime"] == g].iloc[0] for g in ("correct", "overfitted") if (forward["regime"] == g).any()]
    display(Markdown("No radiograph of this bundle has GVRs from both models; each row shows the first "
                     "radiograph of its model."))

# %%
#| label: fig-both-models
#| fig-cap: "(a) GVR of the correctly trained model (top) and of the overfitted model (bottom): original radiograph, healthy reconstruction and GVR (orange: density removed; purple: added; titles give the predicted BNP before and after the move)."
#| fig-alt: "Two rows of three chest radiograph panels, correctly trained model above and overfitted model below: original, healthy reconstruction, and GVR overlay."
figure_from_images(bundle, [[(r.original_path, f"{r.model_id}: original"), (r.healthy_path, "Healthy"),
                             (r.overlay_path, f"GVR (predicted {r.start_pred_ng_l:z.0f} → {r.end_pred_ng_l:z.0f} ng/L)")] for r in pair],
                   size=2.6)

# %%
#| label: fig-baselines
#| fig-cap: "(b) The same radiograph: original, GVR, occlusion, integrated gradients (IG), LIME and Grad-CAM, for each model. Grad-CAM stands in for the paper's global max pooling: both map where a convolutional layer's activations pull the output (class activation maps), and Grad-CAM needs no particular pooling layer in the network."
#| fig-alt: "For each model, a strip of six panels of one chest radiograph: original, GVR overlay, and the occlusion, integrated gradients, LIME and Grad-CAM heat maps."
strips = [[(f"baselines/{r.gvr_id}.png", f"{r.model_id}: original | GVR | occlusion | IG | LIME | Grad-CAM")]
          for r in pair if f"baselines/{r.gvr_id}.png" in recorded]
if not strips:
    raise RuntimeError(f"{bundle.root / 'baselines'} has no comparison image for {[r.gvr_id for r in pair]}; "
                       "rerun the baselines stage")
figure_from_images(bundle, strips, size=9.0)

# %%
#| echo: false
r = pair[0]
REGIME_NAMES = {"correct": "the correctly trained model", "overfitted": "the overfitted model"}
display(HTML(f"<p>Movie 1: this radiograph moving from “diseased” to “healthy” under "
             f"{REGIME_NAMES.get(r.regime, r.model_id)} (<code>{r.model_id}</code>), each frame with the "
             "model's predicted BNP:</p>"
             + image_html(bundle, r.movie_path, alt=f"Animated GIF of GVR {r.gvr_id}", width=256)))

# %% [markdown]
# ## The paper's Figures 5 and 6
#
# Inverse GVRs answer "How would this patient's radiograph change with an elevated BNP?": the latent
# vector of a radiograph with a normal predicted BNP is moved until the predictor reaches a target BNP.
# @fig-inverse shows several radiographs at the highest target; @fig-inverse-levels one radiograph at
# every target.

# %%
#| echo: false
inv = inverse[inverse["regime"] == "correct"]
if inv.empty:
    inv = inverse
if inv.empty:  # the explain stage starts them only from radiographs predicted below the threshold
    display(Markdown(f"No inverse GVRs: they start from radiographs a model did not train on and predicts "
                     f"below {THRESHOLD:g} ng/L, and no model predicted any so."))
else:
    top = inv["target_bnp_ng_l"].max()
    targets = sorted(inv["target_bnp_ng_l"].unique())
    display(Markdown(f"Inverse GVRs of model `{inv['model_id'].iloc[0]}` at targets "
                     f"{', '.join(f'{t:,.0f}' for t in targets)} ng/L; {inv['image_id'].nunique()} radiograph(s)."))

# %%
#| label: fig-inverse
#| fig-cap: "Inverse GVRs of radiographs with a normal predicted BNP, moved to the highest target BNP. Purple: density the model adds; orange: density it removes. Titles give the predicted BNP before and after the move."
#| fig-alt: "A row of chest radiographs with purple and orange overlays showing the density the model adds to raise the predicted BNP to the highest target."
# the cell's last value is what it shows: None draws nothing where there are no inverse GVRs
(figure_from_images(bundle, [[(r.overlay_path, f"{r.image_id}: predicted {r.start_pred_ng_l:z.0f} → {r.end_pred_ng_l:z.0f} ng/L")
                              for r in inv[inv["target_bnp_ng_l"] == top].head(4).itertuples()]], size=2.8)
 if not inv.empty else None)

# %%
#| label: fig-inverse-levels
#| fig-cap: "One radiograph with a normal predicted BNP under the inverse GVR technique at each target BNP, increasing from left to right."
#| fig-alt: "The original chest radiograph followed by its inverse GVR overlays at increasing target BNP levels."
one = inv[inv["image_id"] == inv["image_id"].iloc[0]].sort_values("target_bnp_ng_l") if not inv.empty else inv
(figure_from_images(bundle, [[(one.iloc[0]["original_path"], f"{one.iloc[0]['image_id']}: original")]
                             + [(r.overlay_path, f"target {r.target_bnp_ng_l:,.0f} ng/L (reached {r.end_pred_ng_l:,.0f})")
                                for r in one.itertuples()]], size=2.8)
 if not inv.empty else None)

# %%
#| echo: false
if not inv.empty:
    last = one.iloc[-1]
    display(HTML("<p>Movie 2: this radiograph moving from “healthy” to “diseased”, each frame with the model's "
                 "predicted BNP:</p>"
                 + image_html(bundle, last["movie_path"], alt=f"Animated GIF of inverse GVR {last['gvr_id']}",
                              width=256)))
