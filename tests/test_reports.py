"""The manuscript's report scripts run against a tiny bundle and render to self-contained HTML."""

from __future__ import annotations

import html
import os
import re
import shutil
from pathlib import Path

import pytest

from analysis.roc import auc
from data_schema import Bundle
from analysis.formatting import fmt_ci
from analysis.manuscript import BundleMissingError, bundle_path
from modelling.stages.report import ReportRenderError, render_reports, report_scripts, write_report

pytest.importorskip("nbclient")
pytest.importorskip("jupytext")

INDEX = next(p for p in report_scripts() if p.name == "index.py")
OPTION = re.compile(r"^#\|\s*([\w-]+)\s*:\s*(.*)$", re.M)


@pytest.fixture(scope="module")
def tiny_bundle(tiny_reproduced) -> Path:
    """The session's tiny study, built by `gvr reproduce` (read it; copy it to write)."""
    study, run = tiny_reproduced
    assert run.returncode == 0, run.stderr
    return study


@pytest.fixture(scope="module")
def rendered(tiny_bundle, tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("html")
    paths = render_reports(tiny_bundle, out)
    return {p.stem: p.read_text("utf-8") for p in paths}


def _text(page: str) -> str:
    """A rendered page's words: tags removed, entities decoded, runs of white space made one space."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", page)))


def _floats(script: Path) -> list[dict[str, str]]:
    """The Quarto options of each labelled cell of a script."""
    floats = []
    for cell in script.read_text("utf-8").split("\n# %%"):
        options = {k: v.strip().strip('"') for k, v in OPTION.findall(cell)}
        if options.get("label", "").startswith(("fig-", "tbl-")):
            floats.append(options)
    return floats


def _copy(bundle: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    return copy


def test_every_script_renders_with_every_labelled_table_and_figure(rendered):
    scripts = report_scripts()
    assert sorted(rendered) == sorted(p.stem for p in scripts)
    for script in scripts:
        page = rendered[script.stem]
        floats = _floats(script)
        assert floats, f"{script.name} has no labelled table or figure"
        for options in floats:
            label = options["label"]
            kind = label.split("-")[0]
            assert f'id="{label}"' in page, f"{script.name}: {label} missing from the HTML"
            assert html.escape(options[f"{kind}-cap"], quote=False) in html.unescape(page) or \
                options[f"{kind}-cap"] in html.unescape(page), f"{script.name}: caption of {label} missing"
            if kind == "fig":
                assert options.get("fig-alt"), f"{script.name}: {label} has no fig-alt"
                figure = re.search(rf'<figure[^>]*id="{label}"[^>]*>(.*?)</figure>', page, re.S)
                assert figure and "data:image/png;base64," in figure.group(1), f"{label}: no embedded image"
                assert 'alt="' in figure.group(1)
        assert "Traceback" not in page and "Error" not in re.sub(r"<(script|style).*?</\1>", "", page, flags=re.S)


def test_rendering_again_gives_the_pages_reproduce_wrote(rendered, tiny_bundle):
    """The same bundle gives the same bytes, whichever kernel finished first."""
    for name, page in rendered.items():
        assert page == (tiny_bundle / "report" / f"{name}.html").read_text("utf-8"), name


def _script_file(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text("# %%\n" + body + "\n", encoding="utf-8")
    return path


def test_kernels_run_side_by_side_and_the_first_failure_in_order_is_raised(tmp_path, monkeypatch):
    import modelling.stages.report as report

    monkeypatch.setattr(report, "kernels_at_once", lambda: 2)  # as on 2 cores, whatever this machine has
    bundle = tmp_path / "bundle"
    with Bundle(bundle).stage("note", config={}) as stage:  # a bundle of one file: these scripts read nothing
        stage.write_bytes("note.txt", b"nothing")
    folder = tmp_path / "reports"
    folder.mkdir()
    # a barrier, not a clock: each page waits for the other to start, so the two only finish if their kernels run
    # at once, however slowly the machine starts them (one after another, the first would wait in vain)
    def waiting(me: str, other: str) -> str:
        return (f"import pathlib, time\npathlib.Path({str(tmp_path / me)!r}).touch()\ndeadline = time.time() + 60\n"
                f"while not pathlib.Path({str(tmp_path / other)!r}).exists():\n"
                "    assert time.time() < deadline, 'ran alone'\n    time.sleep(0.05)\nprint('met the other')")

    scripts = [_script_file(folder, "a.py", waiting("a.started", "b.started")),
               _script_file(folder, "b.py", waiting("b.started", "a.started"))]
    pages = render_reports(bundle, tmp_path / "out", scripts=scripts)
    assert [p.name for p in pages] == ["a.html", "b.html"]
    assert all("met the other" in p.read_text("utf-8") for p in pages)
    failing = [_script_file(folder, f"{n}.py", f"raise ValueError('{n} broke')") for n in "zy"]
    with pytest.raises(ReportRenderError, match=r"^z\.py failed against bundle .*ValueError: z broke"):
        render_reports(bundle, tmp_path / "failed", scripts=failing)
    assert not (tmp_path / "failed").exists()  # no page written when one fails
    # once a page failed, no kernel starts for the pages still waiting their turn
    monkeypatch.setattr(report, "kernels_at_once", lambda: 1)
    waiting = _script_file(folder, "late.py", f"import pathlib\npathlib.Path({str(tmp_path / 'late.ran')!r}).touch()")
    with pytest.raises(ReportRenderError, match=r"^z\.py failed"):
        render_reports(bundle, tmp_path / "failed", scripts=[failing[0], waiting])
    assert not (tmp_path / "late.ran").exists()


def _processes_reading(bundle: Path) -> list[int]:
    """Processes whose environment points GVR_BUNDLE at `bundle` (the report kernels do)."""
    wanted, found = f"GVR_BUNDLE={bundle.resolve()}".encode(), []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if wanted in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:  # gone, or another user's
            pass
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").is_file(), reason="reads kernels' environments from /proc")
def test_ctrl_c_while_the_manuscript_renders_is_one_line_exit_130_and_no_kernel_left(tiny_bundle, tmp_path):
    """Ctrl-C during `gvr report` printed kernel tracebacks and "error: AssertionError", and exited 1."""
    import signal
    import subprocess
    import time

    from data_schema import validate_bundle
    from tests.conftest import clean_environment, gvr_executable

    root = _copy(tiny_bundle, tmp_path)
    record = Bundle(root).stages["report"]
    env = {**clean_environment(), "GVR_PROGRESS_EVERY": "0", "COLUMNS": "200"}
    env.pop("GVR_PROGRESS", None)
    run = subprocess.Popen([gvr_executable(), "report", "--force", str(root)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    while not any("rendering the manuscript: start" in line for line in lines):
        line = run.stderr.readline()
        assert line, "".join(lines)
        lines.append(line)
    deadline = time.monotonic() + 30
    while not _processes_reading(root) and time.monotonic() < deadline:  # a kernel is up
        time.sleep(0.1)
    assert _processes_reading(root)
    time.sleep(1.0)
    run.send_signal(signal.SIGINT)
    _, rest = run.communicate(timeout=120)
    err = "".join(lines) + rest
    assert run.returncode == 130, err
    assert "interrupted; a rerun resumes" in err
    for noise in ("Traceback", "IPKernelApp", "Exception ignored", "AssertionError", "error:", "ERROR", "warning"):
        assert noise not in err, err
    time.sleep(0.5)
    assert _processes_reading(root) == []  # every kernel was shut down
    assert Bundle(root).stages["report"] == record and validate_bundle(root) == []


def test_the_moves_table_shows_each_moves_relevance_mass_from_the_bundle(rendered, tiny_bundle):
    import json

    fidelity = json.loads(Bundle(tiny_bundle).verify_file("fidelity/summary.json").read_text())
    table = re.search(r'id="tbl-moves".*?</table>', rendered["fidelity"], re.S).group(0)
    assert re.findall(r"<th>(.*?)</th>", table)[-1] == "Relevance mass"
    shown = [float(re.findall(r"<td>(.*?)</td>", row)[-1])
             for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S)]
    expected = [v["relevance_mass"] for by_move in fidelity["moves_compared"].values() for v in by_move.values()]
    assert shown == pytest.approx([round(x, 3) for x in expected], abs=1e-9) and len(shown) >= 8


def test_movies_are_embedded(rendered):
    assert rendered["tables_figures"].count("data:image/gif;base64,") >= 2


def test_reported_auc_follows_the_bundle(tiny_bundle, tmp_path):
    root = _copy(tiny_bundle, tmp_path)
    bundle = Bundle(root)
    predictions = bundle.read_table("predictions")
    rows = (predictions["model_id"] == "mlp-correct") & (predictions["role"] == "train")
    y = predictions.loc[rows, "bnp_true_ng_l"] >= 100.0
    before = auc(y.to_numpy(), predictions.loc[rows, "bnp_pred_ng_l"].to_numpy())
    # The case predicted highest now gets the lowest prediction of all: the AUC must fall.
    top_case = predictions.loc[rows & (predictions["bnp_true_ng_l"] >= 100.0), "bnp_pred_ng_l"].idxmax()
    predictions.loc[top_case, "bnp_pred_ng_l"] = predictions.loc[rows, "bnp_pred_ng_l"].min() / 2
    with bundle.stage("edit-one-prediction", config={"row": int(top_case)}) as stage:
        stage.write_table("predictions", predictions)
    after = auc(y.to_numpy(), predictions.loc[rows, "bnp_pred_ng_l"].to_numpy())
    assert fmt_ci(after) != fmt_ci(before)

    with bundle.stage("report", config={"scripts": ["index.py"]}) as stage:
        written = write_report(stage, scripts=[INDEX])
    assert written == ["report/index.html"]
    page = bundle.verify_file("report/index.html").read_text("utf-8")
    row = re.search(r"<td>mlp-correct</td>.*?own training data.*?</tr>", page, re.S).group(0)
    assert fmt_ci(after) in row and fmt_ci(before) not in row


def test_a_bundle_without_inverse_gvrs_says_why_instead_of_failing(tiny_bundle, tmp_path):
    """Ten real radiographs, every one predicted above the threshold: the explain stage had no radiograph to
    start an inverse GVR from, and the manuscript stopped with "lists no inverse GVR; rerun the explain stage"."""
    import html as html_lib

    root = _copy(tiny_bundle, tmp_path)
    bundle = Bundle(root)
    index = bundle.read_table("gvr_index")
    assert (index["kind"] == "inverse").any()
    with bundle.stage("explain-without-inverse", config={}) as stage:
        stage.write_table("gvr_index", index[index["kind"] != "inverse"].reset_index(drop=True))
    script = next(p for p in report_scripts() if p.name == "tables_figures.py")
    page = render_reports(root, tmp_path / "out", scripts=[script])[0].read_text("utf-8")
    text = html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))
    assert "No inverse GVRs: they start from radiographs a model did not train on and predicts below 100 ng/L" in text
    assert "Movie 2" not in text and "?@fig" not in text


def test_missing_bundle_file_fails_naming_it(tiny_bundle, tmp_path):
    root = _copy(tiny_bundle, tmp_path)
    (root / "cohort" / "summary.json").unlink()
    with pytest.raises(ReportRenderError, match=r"index\.py.*NotInManifestError.*cohort/summary\.json"):
        render_reports(root, tmp_path / "out", scripts=[INDEX])
    assert not (tmp_path / "out" / "index.html").exists()


def test_a_study_analysed_without_the_mixed_models_says_how_to_add_them(tiny_bundle, tmp_path):
    from analysis.analyse import analyse_bundle

    root = _copy(tiny_bundle, tmp_path)
    analyse_bundle(root, mixed_models=False, force=True)
    with pytest.raises(ReportRenderError, match=r"without Table 2's mixed-effects models.*gvr analyse [^`]*bundle --force"):
        render_reports(root, tmp_path / "out", scripts=[INDEX])


def test_no_bundle_says_how_to_build_one(tmp_path, monkeypatch):
    monkeypatch.setenv("GVR_BUNDLE", str(tmp_path))
    with pytest.raises(BundleMissingError, match="make reproduce"):
        bundle_path()
    with pytest.raises(BundleMissingError, match="make reproduce"):
        render_reports(tmp_path / "nothing")


def test_a_relative_bundle_path_is_from_where_quarto_was_run(tmp_path, monkeypatch):
    """Quarto sets QUARTO_PROJECT_ROOT while it renders (and runs the code there, `execute-dir: project`):
    GVR_BUNDLE=study is the project's study/, whatever the working directory."""
    (tmp_path / "study").mkdir()
    (tmp_path / "study/manifest.json").write_text("{}")
    (tmp_path / "reports").mkdir()
    monkeypatch.chdir(tmp_path / "reports")
    monkeypatch.setenv("GVR_BUNDLE", "study")
    monkeypatch.setenv("QUARTO_PROJECT_ROOT", str(tmp_path))
    assert bundle_path() == (tmp_path / "study").resolve()


def test_the_samples_realism_sentence_reads_the_bundle(tiny_bundle, rendered):
    import json

    realism = json.loads((tiny_bundle / "image_gvr/cnn/fidelity.json").read_text())["realism"]["sets"]
    own = realism["decoder samples (two-stage sampler)"]["kid"]
    prior = realism["decoder samples (N(0, I) prior)"]["kid"]
    text = re.sub(r"<[^>]+>", "", html.unescape(rendered["beyond"]))
    sentence = re.search(r"By a measure that does not look for lungs.*?from the other", text, re.S).group(0)
    assert f"{own:z.4f}" in sentence and f"{prior:z.4f}" in sentence


def test_the_representation_section_reads_each_models_costs_from_the_bundle(tiny_bundle, rendered):
    import json

    summary = json.loads((tiny_bundle / "fidelity/summary.json").read_text())
    page = _text(rendered["fidelity"])
    assert summary["representation"] and "Table" in page
    for model, rep in summary["representation"].items():
        per_cost = rep["rank_agreement_per_cost"]
        assert (f"{'undefined' if per_cost is None else format(per_cost, '.2f')} for {model} (against the reliance "
                "itself") in page
        heart = rep["features"].get("heart")
        if heart:
            assert f"{model} heart {heart['radiographs']} {heart['shown_r']:z.3f}".rstrip("0") in page


def test_the_manuscript_says_when_samples_were_encoded_again_or_codes_drawn_with_noise(tiny_bundle, tmp_path):
    import json

    import yaml

    root = _copy(tiny_bundle, tmp_path)
    bundle = Bundle(root)
    summary = json.loads(bundle.verify_file("train/summary.json").read_text())
    study = yaml.safe_load(bundle.verify_file("config.yaml").read_text())
    assert summary["samples"]["sampler"]["cycles"] == study["decoder"]["sampler_cycles"] == 1
    summary["samples"]["sampler"]["cycles"] = study["decoder"]["sampler_cycles"] = 2
    study["decoder"]["code_noise"] = 0.25
    study["decoder"]["edge_weight"] = 1.5
    with bundle.stage("train-with-cycles", config={}) as stage:
        stage.write_json("train/summary.json", summary)
        stage.write_bytes("config.yaml", yaml.safe_dump(study).encode())
    scripts = [p for p in report_scripts() if p.name in ("index.py", "beyond.py", "fidelity.py")]
    pages = {p.name: _text(p.read_text("utf-8")) for p in render_reports(root, tmp_path / "out", scripts=scripts)}
    assert "Each draw is then decoded and encoded again twice (decoder.sampler_cycles)" in pages["beyond.html"]
    assert "its decoder trained to draw each code with Gaussian noise of standard deviation 0.25 added " \
        "(decoder.code_noise; a VAE's fixed posterior variance)" in pages["fidelity.html"]
    assert "each decoder sample's code is decoded and encoded again twice before it is drawn" in pages["index.html"]
    assert "the decoder learns to draw each code with noise of standard deviation 0.25 added (decoder.code_noise)" \
        in pages["index.html"]
    assert "the decoder's loss adds 1.5 times the squared error of differences between neighbouring pixels " \
        "(decoder.edge_weight)" in pages["index.html"]

def test_the_report_kernel_gets_the_users_library_path_back_after_r_started(tmp_path):
    """`gvr reproduce` starts R (the mixed models) before it imports the report stage; the kernel then lost
    the user's own LD_LIBRARY_PATH entries along with the ones rpy2 put in front of them."""
    import subprocess
    import sys

    if shutil.which("Rscript") is None:
        pytest.skip("needs R (make setup installs it)")
    script = (
        "import os\n"
        "from analysis.mixed_models import lme4\n"
        "lme4._session()\n"
        "assert os.environ['LD_LIBRARY_PATH'] != '/opt/mine/lib'  # R's folders in front\n"
        "from modelling.stages.report import kernel_env\n"
        "print(kernel_env('.').get('LD_LIBRARY_PATH'))\n")
    env = {**os.environ, "LD_LIBRARY_PATH": "/opt/mine/lib"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300,
                         cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "/opt/mine/lib"


def test_a_float_whose_cell_drew_nothing_gets_no_number_and_no_caption():
    # A section that is not run (the shortcut benchmark outside `make shortcuts`) showed empty numbered captions.
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    from modelling.stages.report import QuartoOptionsPreprocessor

    empty = new_code_cell("#| label: fig-empty\n#| fig-cap: \"Nothing drawn\"\nNone")
    table = new_code_cell("#| label: tbl-shown\n#| tbl-cap: \"A table\"\nshow()",
                          outputs=[new_output("display_data", data={"text/html": "<table></table>"})])
    nb = new_notebook(cells=[empty, table, new_markdown_cell("See @tbl-shown and (@fig-empty); not @fig-typo.")])
    nb, _ = QuartoOptionsPreprocessor().preprocess(nbformat.from_dict(nb), {})
    assert nb.cells[0].outputs == [] and "Nothing drawn" not in str([c.get("outputs") for c in nb.cells])
    assert "<strong>Table 1:</strong> A table" in str(nb.cells[1].outputs)
    # a reference to the float that drew nothing says so (a real-data page showed "(@tbl-moves)"); a label no
    # cell has stays as written, so a typo shows
    # (in words that read inside a sentence: "in not shown: ... and not shown: ..." did not)
    assert nb.cells[2].source == "See [Table 1](#tbl-shown) and (a figure not drawn for this bundle); not @fig-typo."


def test_the_shortcut_section_says_which_share_decides(tiny_bundle, tmp_path):
    """The benchmark's results in a bundle (as `make shortcuts` leaves them): the page names the share the audit
    decides by from the summary (O since 2026-12-04), and shows the others as not deciding."""
    import html as html_lib

    from data_schema import Bundle
    from modelling.stages.shortcuts import figure_png, summarise
    from tests.examples import examples

    root = _copy(tiny_bundle, tmp_path)
    ex = examples()
    shares, models = ex["shortcut_shares"], ex["shortcut_models"]
    summary = summarise(shares, models) | {"strengths": [1.0], "seeds": [1], "negative_share": 0.05}
    with Bundle(root).stage("shortcuts", config={}) as st:
        st.write_table("shortcut_shares", shares)
        st.write_table("shortcut_models", models)
        st.write_bytes("shortcuts/shortcuts.png", figure_png(shares, models))
        st.write_json("shortcuts/summary.json", summary)
    beyond = next(p for p in report_scripts() if p.name == "beyond.py")
    page = render_reports(root, tmp_path / "out", scripts=[beyond])[0].read_text("utf-8")
    text = html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))
    assert summary["decides"] == "outside_share"
    assert ("comes from outside the disease and device masks (O), which decides: Spearman -; at more than half it "
            "gives 0 true and 0 false positives, 1 false negatives (1 models)") in text
    assert "the non-disease masks alone as the non-disease region (E) (shown, not deciding)" in text
    assert "the share of the GVR change by area in the masks (N) (shown, not deciding)" in text
    _words_and_no_negative_zero(page, "beyond, with the shortcut benchmark")  # its table is rendered only here


def test_the_rank_agreement_is_printed_with_its_interval_from_the_bundle(tiny_bundle, rendered):
    import json

    models = json.loads((tiny_bundle / "fidelity/summary.json").read_text())["models"]
    text = _text(rendered["fidelity"])
    shown = 0
    for model_id, m in models.items():
        if m["rank_agreement"] is None or m["rank_agreement_ci"] is None:
            continue
        low, high = m["rank_agreement_ci"]
        assert (f"{m['rank_agreement']:z.2f} (95 % bootstrap interval over its GVR radiographs {low:z.2f} to "
                f"{high:z.2f}).") in text, model_id
        shown += 1
    assert shown, "the tiny study ranks no model's features: nothing was checked"


def test_the_fidelity_targets_are_judged_as_gvr_fidelity_judges_them(tiny_bundle, rendered):
    import json

    from analysis.fidelity_targets import baseline_checks, fidelity_checks

    checks = fidelity_checks(json.loads((tiny_bundle / "fidelity/summary.json").read_text()))
    mass = baseline_checks(json.loads((tiny_bundle / "baselines/audit.json").read_text()))
    assert checks and len(mass) == 2  # the relevance mass target of each model, from the baselines stage
    checks |= mass
    text = _text(rendered["fidelity"])
    for name, t in checks.items():
        assert name.split(": ")[-1] not in text or "_" not in name  # body_mass, integrated_gradients: not as names
        name = name.replace("_", " ")  # body mass, integrated gradients: as words on the page
        if not t.get("measurable", True):  # as `gvr fidelity` prints it: neither met nor missed
            assert f"{name}: not measurable on this bundle (nothing to measure it on), neither met nor missed" in text
        else:
            value = "undefined" if t["value"] is None else f"{t['value']:z.2f}"
            assert f"{name}: {value}, {'met' if t['met'] else 'NOT met'}" in text, name


def test_a_target_with_nothing_to_measure_on_is_neither_met_nor_missed(tiny_bundle, tmp_path):
    """No GVR radiograph with cardiomegaly and no large effusion (three of five default cohorts): the manuscript said
    "undefined, NOT met" where `gvr fidelity` says "not measurable"."""
    import json

    from analysis.fidelity_targets import fidelity_checks

    root = _copy(tiny_bundle, tmp_path)
    bundle = Bundle(root)
    summary = json.loads(bundle.verify_file("fidelity/summary.json").read_text())
    summary["models"]["mlp-correct"].update(ctr_lower=2 / 3, ctr_measured_with_cardiomegaly=3,
                                            ctr_lower_small_effusion=None, ctr_small_effusion_measured=0)
    summary["models"]["mlp-overfitted"].update(ctr_lower=None, ctr_measured_with_cardiomegaly=0, ctr_lower_small_effusion=None,
                                               ctr_small_effusion_measured=0, effusion_cleared=None, effusion_measured=0,
                                               rank_agreement=None)
    for truth in (summary.get("measured_on_truth") or {}).values():
        truth.update(ctr_lower_small_effusion=None, ctr_small_effusion_measured=0, ctr_lower=None,
                     ctr_measured_with_cardiomegaly=0)
    with bundle.stage("fidelity-nothing-to-measure", config={}) as stage:
        stage.write_json("fidelity/summary.json", summary)
    name = next(n for n in fidelity_checks(summary) if "no large effusion" in n)
    scripts = [p for p in report_scripts() if p.name == "fidelity.py"]
    text = _text(next(iter(render_reports(root, tmp_path / "out", scripts=scripts))).read_text("utf-8"))
    assert f"{name}: not measurable on this bundle (nothing to measure it on), neither met nor missed" in text
    assert f"{name}: undefined" not in text and "NOT met" in text  # the other targets are still judged
    overfitted_rank = "mlp-overfitted: GVRs rank features as reliance does, Spearman >= 0.7"
    assert f"{overfitted_rank}: undefined, NOT met" in text  # GVRs to rank, and no agreement: missed
    # and each model's line says there is none, rather than "in not measurable of the 0"
    assert "in 67% of the 3 GVRs with cardiomegaly measured on both, none of them without a large effusion;" in text
    assert "no GVR with cardiomegaly whose ratio reads on both; no GVR with an effusion measured on both;" in text
    assert "measurable of the 0" not in text and "measurable of 0" not in text
    if summary.get("measured_on_truth"):  # the truth's own line: the same
        assert "lower on the disease-free counterfactual than on the original (no radiograph with cardiomegaly " \
            "measured), and with only the heart made normal" in text
        assert "none of those measured has cardiomegaly without a large effusion;" in text


def test_the_manuscript_says_how_the_mlp_started(tiny_bundle, rendered):
    """A start the paper does not describe is named among the study's departures (the tiny profile's is on)."""
    text = _text(rendered["index"])
    assert "the MLP's output starts at its training rows' mean log BNP rather than near 0" in text


def test_the_metrics_table_is_the_faithfulness_table_and_dashes_what_applies_to_gvrs_alone(tiny_bundle, rendered):
    """Table 5 (tbl-metrics): each model and method's mean relevance mass and pointing game as the baselines stage
    scored them, and a dash, not NaN, where a column (validity, proximity, realism) applies to GVRs alone."""
    import pandas as pd
    from bs4 import BeautifulSoup

    faith = Bundle(tiny_bundle).read_table("faithfulness")
    expected = faith.groupby(["model_id", "method"]).agg(mass=("relevance_mass", "mean"), hit=("pointing_hit", "mean"))
    labels = {"gvr": "GVR", "occlusion": "Occlusion", "integrated_gradients": "Integrated gradients", "lime": "LIME",
              "gradcam": "Grad-CAM"}
    table = next(t for t in BeautifulSoup(rendered["fidelity"], "html.parser").find_all("table")
                 if "Relevance mass" in t.get_text() and "Pointing game" in t.get_text())
    header = [c.get_text(strip=True) for c in table.find("thead").find_all("tr")[0].find_all("th")]
    columns = [h for h in header if h]  # the index's corner cells are empty
    seen, model = set(), None
    for row in table.find("tbody").find_all("tr"):
        heads = [c.get_text(strip=True) for c in row.find_all("th")]
        model = heads[0] if len(heads) == 2 else model  # the model's cell spans its rows
        method = heads[-1]
        values = dict(zip(columns, [c.get_text(strip=True) for c in row.find_all("td")]))
        key = next(m for m, label in labels.items() if label == method)
        for column, name in (("Relevance mass", "mass"), ("Pointing game", "hit")):
            want = expected.loc[(model, key), name]
            if pd.isna(want):  # no map scored (a tiny model's flat map): a dash too
                assert values[column] == "–", (model, method, column)
            else:
                assert float(values[column]) == pytest.approx(want, abs=5e-4), (model, method, column)
        gvr_only = [c for c in columns if c.startswith(("Reached", "Latent distance", "Image distance", "Valid"))]
        assert len(gvr_only) == 4
        for column in gvr_only:
            assert (values[column] == "–") == (key != "gvr"), (model, method, column)
        seen.add((model, key))
    assert seen == set(expected.index)
    assert "NaN" not in table.get_text()


def _words_and_no_negative_zero(page: str, name: str) -> None:
    """No header cell of the page's tables is a snake_case name of the bundle's, and no number that rounds to zero
    shows a minus sign ("-0", "-0.00", "-0.000"), in a table or in the text."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(page, "html.parser")
    heads = [th.get_text(strip=True) for table in soup.find_all("table") for th in table.find_all("th")]
    assert [h for h in heads if re.search(r"\w_\w", h)] == [], name
    found = re.findall(r"(?<![\w.])-0(?:\.0+)?(?![\d.])", soup.get_text())
    assert found == [], (name, found)


def test_table_headers_are_words_not_the_bundles_column_names(rendered):
    """A reader sees "Relevance mass", not relevance_mass, and "0.00", not "-0.00"."""
    for name, page in rendered.items():
        _words_and_no_negative_zero(page, name)


def test_no_table_cell_reads_nan(rendered):
    """A value a row does not have (a baseline's validity, a flat map's region shares on the tiny study) is a dash."""
    for name, page in rendered.items():
        cells = re.findall(r"<td[^>]*>\s*(NaN|nan|None)\s*</td>", page)
        assert not cells, (name, cells[:3])
    assert any("<td>–</td>" in page for page in rendered.values())


def test_the_index_links_to_the_other_pages(rendered):
    """The other pages were named in italics without a link (a reviewer's reading)."""
    for page in ("tables_figures", "beyond", "fidelity"):
        assert f'href="{page}.html"' in rendered["index"], page


def test_the_auc_table_gives_each_models_interval_with_patients_as_clusters(tiny_bundle, rendered):
    """A patient's several radiographs are one cluster: Obuchowski's interval beside DeLong's, for every row."""
    from analysis.clustered_roc import clustered_auc

    bundle = Bundle(tiny_bundle)
    predictions = bundle.read_table("predictions")
    patient_of = bundle.read_table("radiographs").set_index("image_id")["patient_id"]
    page = rendered["index"]
    assert "<th>95% CI, patients as clusters</th>" in page
    for (model_id, role), g in predictions.groupby(["model_id", "role"]):
        patients = patient_of.reindex(g["image_id"]).to_numpy()
        y = g["bnp_true_ng_l"] >= 100.0
        r = clustered_auc(y, g["bnp_pred_ng_l"], patients)
        row = re.search(rf"<td>{model_id}</td>(?:(?!</tr>).)*?<td>{len(set(patients))}</td>(?:(?!</tr>).)*</tr>",
                        page, re.S)
        # where DeLong's interval is not defined (fewer than 2 cases or controls) neither is shown
        shown = f"<td>{r.ci_low:z.2f}, {r.ci_high:z.2f}</td>" if min(y.sum(), (~y).sum()) >= 2 else "<td>–</td>"
        assert row and shown in row.group(0), (model_id, role)
        if min(y.sum(), (~y).sum()) == 1:  # the AUC itself is defined: it was printed as "not defined"
            assert f"<td>{r.auc:z.2f} (no interval: DeLong&#x27;s variance needs at least 2" in row.group(0) or \
                f"<td>{r.auc:z.2f} (no interval: DeLong's variance needs at least 2" in row.group(0), row.group(0)


def test_what_a_cell_writes_to_stderr_goes_to_the_terminal_not_onto_the_page(caplog):
    """21 lines of matplotlib's "findfont: Font family ['STIXGeneral'] not found" were published under Figure 2."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    from modelling.stages.report import QuartoOptionsPreprocessor

    cell = new_code_cell("draw()", outputs=[
        new_output("stream", name="stderr", text="findfont: Font family ['STIXGeneral'] not found.\nagain\n"),
        new_output("stream", name="stdout", text="kept\n")])
    with caplog.at_level("WARNING"):
        nb, _ = QuartoOptionsPreprocessor().preprocess(nbformat.from_dict(new_notebook(cells=[cell])), {})
    assert [o["name"] for o in nb.cells[0].outputs] == ["stdout"]
    said = [r.getMessage() for r in caplog.records]
    assert said == ["a report cell wrote to stderr (2 line(s), left off the page): findfont: Font family "
                    "['STIXGeneral'] not found."]
