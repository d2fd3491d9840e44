"""The `gvr` command line, through its installed console script and typer's runner."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from data_schema import Bundle
from modelling.cli import app
from modelling.config import load_config
from tests.conftest import clean_environment, copy_bundle, gvr_executable
from tests.examples import examples

runner = CliRunner()

BROKEN = (
    "result_id,patient_id,collected_at,bnp_ng_l\n"
    "r1,p1,2012-01-01 10:00,350\n"
    "r1,p2,2012-13-01 10:00,-5\n"
    "r3,,yesterday,abc\n"
)


def test_console_script_is_installed_and_reports_every_problem(tmp_path, clean_env):
    path = tmp_path / "bnp_results.csv"
    path.write_text(BROKEN)
    exe = gvr_executable()
    assert exe, "the `gvr` console script is not installed (pip install -e .)"
    result = subprocess.run([exe, "validate", str(path)], capture_output=True, text=True, timeout=120, env=clean_env)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines == [
        f"{path}, row 2 (line 3), column 'bnp_ng_l': must be > 0 (value: -5.0)",
        f"{path}, row 2 (line 3), column 'collected_at': not an ISO 8601 timestamp (e.g. 2012-03-04 05:06:07) (value: '2012-13-01 10:00')",
        f"{path}, row 2 (line 3), column 'result_id': duplicate primary key (result_id='r1'); first in row 1",
        f"{path}, row 3 (line 4), column 'bnp_ng_l': not a finite number (value: 'abc')",
        f"{path}, row 3 (line 4), column 'collected_at': not an ISO 8601 timestamp (e.g. 2012-03-04 05:06:07) (value: 'yesterday')",
        f"{path}, row 3 (line 4), column 'patient_id': missing value",
    ]
    assert "6 problem(s)" in result.stderr


def _commands(app_or_group) -> dict[str, set[str]]:
    """Every command and group the typer app defines, as ``{group: {command, ...}}`` ('' is the top)."""
    import typer.main

    click_app = typer.main.get_command(app_or_group)
    return {"": set(click_app.commands), **{
        name: set(group.commands) for name, group in click_app.commands.items() if hasattr(group, "commands")}}


@pytest.mark.parametrize("entry", ["gvr", "python -m modelling.cli"])
def test_every_entry_point_lists_every_command(entry, clean_env):
    """The real entry points, run as a user runs them, list what the app defines (readers packet included)."""
    prefix = [gvr_executable()] if entry == "gvr" else [sys.executable, "-m", "modelling.cli"]
    defined = _commands(app)
    assert {"packet", "serve", "unblind", "simulate"} <= defined["readers"]
    started = {group: subprocess.Popen([*prefix, *([group] if group else []), "--help"], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, env={**clean_env, "COLUMNS": "200"})
               for group in defined}  # side by side: each is mostly the interpreter's start
    for group, commands in defined.items():
        stdout, stderr = started[group].communicate(timeout=120)
        out = subprocess.CompletedProcess(started[group].args, started[group].returncode, stdout, stderr)
        assert out.returncode == 0, out.stderr
        listed = set()
        for line in out.stdout.split("Commands:", 1)[-1].splitlines():
            if line.startswith("  ") and not line.startswith("   "):  # "  name  Summary", not a wrapped line
                listed.add(line.split()[0])
        assert commands <= listed, f"{entry} {group} --help lacks {sorted(commands - listed)}"
        # a flag takes no value: help that printed "--quiet <bool>" told users otherwise
        assert "<bool>" not in out.stdout and "╭" not in out.stdout, out.stdout


def test_no_command_shows_a_flag_as_taking_a_value():
    for group, commands in _commands(app).items():
        for command in commands:
            shown = runner.invoke(app, [*([group] if group else []), command, "--help"], env={"COLUMNS": "200"}).output
            assert "<bool>" not in shown, (group, command, shown)


def test_every_usage_line_names_its_arguments_in_capitals():
    """As [BUNDLE] does: usage lines had shown "{packet_dir}", "[path]" and "[config]" beside it."""
    for group, commands in _commands(app).items():
        for command in commands:
            shown = runner.invoke(app, [*([group] if group else []), command, "--help"], env={"COLUMNS": "200"}).output
            usage = next(line for line in shown.splitlines() if line.startswith("Usage:"))
            arguments = re.findall(r"[A-Za-z_]+", usage.split("[OPTIONS]", 1)[-1])
            assert all(a.isupper() for a in arguments), (group, command, usage)


def test_valid_table_exits_zero(tmp_path):
    path = tmp_path / "patients.csv"
    examples()["patients"].to_csv(path, index=False)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0 and "is valid" in result.stdout


def test_schema_option_and_unknown_schema(tmp_path):
    path = tmp_path / "people.csv"
    examples()["patients"].to_csv(path, index=False)
    assert runner.invoke(app, ["validate", str(path), "--schema", "patients"]).exit_code == 0
    result = runner.invoke(app, ["validate", str(path), "--schema", "patient"])
    assert result.exit_code == 2 and "unknown schema 'patient'; known schemas: bnp_results" in result.output


def test_validate_a_bundle(tmp_path):
    bundle = Bundle(tmp_path / "b")
    with bundle.stage("cohort", config={}) as st:
        st.write_table("patients", examples()["patients"])
        st.write_table("splits", examples()["splits"])
    assert runner.invoke(app, ["validate", str(bundle.root)]).exit_code == 0
    (bundle.root / "tables/splits.parquet").write_bytes(b"PAR1 truncated")
    result = runner.invoke(app, ["validate", str(bundle.root)])
    assert result.exit_code == 1
    assert f"{bundle.root / 'tables/splits.parquet'}: content changed since stage 'cohort'" in result.stdout


def test_a_table_of_no_known_name_is_a_usage_error_naming_the_schemas_that_fit(tmp_path):
    """It was reported as a problem of the table (exit 1) with no hint of which schema to name."""
    path = tmp_path / "results.csv"
    path.write_text("result_id,patient_id,collected_at,bnp_ng_l\nr1,p1,2012-01-01,350\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "name one with --schema (its columns fit: bnp_results, bnp_input)" in result.output
    assert runner.invoke(app, ["validate", str(path), "--schema", "bnp_results"]).exit_code == 0
    odd = tmp_path / "odd.csv"
    odd.write_text("x,y\n1,2\n")
    listed = runner.invoke(app, ["validate", str(odd)])
    assert listed.exit_code == 2 and "schemas: " in listed.output and "input formats: " in listed.output
    assert runner.invoke(app, ["validate", str(tmp_path)]).exit_code == 2  # a folder that is no bundle: usage
    # a header that only one format fits is taken as that format, and it says so
    mine = tmp_path / "my_bnp_export.csv"
    mine.write_text("patient_id,collected_at,bnp_ng_l\np1,2012-01-01 10:00,350\np2,2012-01-02 10:00,abc\n")
    taken = runner.invoke(app, ["validate", str(mine)])
    assert taken.exit_code == 1 and "taken as bnp_input from its columns (give --schema to name another)" in taken.output
    assert "row 2 (line 3), column 'bnp_ng_l'" in taken.output


def test_missing_path_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "nothing.csv")])
    assert result.exit_code == 2 and "no such file" in result.output
    (tmp_path / "config.yaml").write_text("profile: tiny\n")  # not a table: a usage error, as a missing file is
    wrong = runner.invoke(app, ["validate", str(tmp_path / "config.yaml"), "--schema", "patients"])
    assert wrong.exit_code == 2 and "not a table; give a .csv or .parquet file, or a bundle directory" in wrong.output


def test_schema_export_check_passes_on_the_committed_json():
    result = runner.invoke(app, ["schema", "export", "--check"])
    assert result.exit_code == 0, result.output


def test_schema_export_check_fails_on_drift(tmp_path):
    assert runner.invoke(app, ["schema", "export", "--out", str(tmp_path)]).exit_code == 0
    target = tmp_path / "patients.schema.json"
    target.write_text(target.read_text().replace("Sex recorded", "Sex"))
    result = runner.invoke(app, ["schema", "export", "--check", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "patients" in result.output


def test_config_show_prints_the_validated_config():
    result = runner.invoke(app, ["config", "show", "tiny"])
    assert result.exit_code == 0
    assert yaml.safe_load(result.stdout)["decoder"]["latent_dim"] == load_config("tiny").decoder.latent_dim


def test_config_show_names_a_bad_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("profile: x\nseed: 1\nimage_size: 64\nencoder: {iteration: 3}\n")
    result = runner.invoke(app, ["config", "show", str(path)])
    assert result.exit_code == 2 and "encoder.iteration: unknown key (did you mean 'iterations'?)" in result.output


STAGES = ("config", "cohort", "train", "explain", "fidelity", "baselines", "image_model", "image-cnn-direct",
          "image-cnn-surrogate", "image-fidelity", "readers", "shortcuts", "analyse", "report")


def test_reproduce_builds_the_whole_study_and_logs_its_progress(tiny_reproduced, tmp_path, clean_env):
    """`gvr reproduce > log`, as `make reproduce > log` runs it: stderr is not a terminal, so every
    stage logs its start and end, long work logs its progress, and nothing else reaches the log."""
    built, run = tiny_reproduced
    assert run.returncode == 0, run.stderr
    assert yaml.safe_load((built / "config.yaml").read_text())["profile"] == "tiny"
    assert set(STAGES) <= set(Bundle(built).stages)
    assert (built / "analysis/table2.html").is_file()
    assert f"manuscript: {built / 'report/index.html'}" in run.stdout
    log = run.stderr
    for stage in STAGES:
        assert f"stage {stage}: start" in log and f"stage {stage}: done in" in log, stage
    for work in ("rendering radiographs", "decoder and encoder (autoencoder)", "fidelity: interventions per model",
                 "baseline maps", "rendering the manuscript"):
        assert f"{work}: start" in log and f"{work}: done" in log, work
    assert any(line.startswith("[") and "decoder and encoder (autoencoder): " in line and "ETA" in line
               for line in log.splitlines())
    assert "without encryption" not in log and "IPKernelApp" not in log
    strays = [line for line in log.splitlines() if not (line[:1] == "[" and line[9:11] == "] ") and not line.startswith("warning: ")]
    assert not strays, strays  # timestamped progress lines or one-line warnings, nothing else
    page = (built / "report/index.html").read_text()
    assert str(built.parent) not in page and "Bundle: <code>study</code>, holding a synthetic phantom cohort" in page
    # the reruns write (config.yaml, the manifest): into a copy, which is as current as the study
    study = copy_bundle(built, tmp_path / "study")
    env = {**clean_env, "GVR_PROGRESS_EVERY": "0", "COLUMNS": "200"}
    env.pop("GVR_PROGRESS", None)
    again = subprocess.run([gvr_executable(), "reproduce", "--config", "tiny", "--out", str(study)],
                           capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0, again.stderr
    assert all(f"stage {stage}: up to date, skipped" in again.stderr for stage in STAGES), again.stderr
    report = runner.invoke(app, ["report", str(study)])
    assert report.exit_code == 0 and "index.html" in report.output
    without = subprocess.run([gvr_executable(), "reproduce", "--config", "tiny", "--out", str(study), "--no-shortcuts"],
                             capture_output=True, text=True, timeout=600, env=env)
    assert without.returncode == 0, without.stderr
    assert "stage shortcuts" not in without.stderr and "stage train: up to date, skipped" in without.stderr
    assert yaml.safe_load((study / "config.yaml").read_text())["shortcuts"]["run"] is False


def test_readers_simulate_prints_every_readers_kappa_or_says_it_is_undefined(tiny_reproduced, tmp_path):
    built, run = tiny_reproduced
    assert run.returncode == 0, run.stderr
    study = copy_bundle(built, tmp_path / "study")
    result = runner.invoke(app, ["readers", "simulate", str(study)])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("intra-observer kappa: "))
    table = Bundle(study).read_table("reader_assessments")
    shown = line.removeprefix("intra-observer kappa: ").split(", ")
    pairs = table[["reader", "feature"]].drop_duplicates().sort_values(["reader", "feature"])
    assert [" ".join(x.split()[:2]) for x in shown] == [f"{r.reader} {r.feature}" for r in pairs.itertuples()]
    for x in shown:  # a number, or undefined with why: never left out
        value = x.split(" ", 2)[2]
        assert value == "undefined (one answer throughout)" or float(value) == float(value)


def test_train_command_prints_aucs_and_targets(tmp_path):
    result = runner.invoke(app, ["train", "--config", "tiny", "--bundle", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "mlp-correct/test" in result.output and "mlp overfitted: own training data AUC >= 0.97" in result.output
    assert "held-out reconstruction: MSE" in result.output
    # an interval in words: "(0.42-0.48)" read as a subtraction, and a negative end made it "(-0.04-0.00)"
    assert re.search(r"median r -?\d\.\d\d \(IQR -?\d\.\d\d to -?\d\.\d\d\)", result.output), result.output


def test_analyse_command_lists_what_it_wrote_and_skipped(tmp_path):
    assert runner.invoke(app, ["cohort", "synth", "--config", "tiny", "--out", str(tmp_path / "b"), "--workers", "1"]).exit_code == 0
    result = runner.invoke(app, ["analyse", str(tmp_path / "b"), "--no-mixed-models"])
    assert result.exit_code == 0, result.output
    assert "table1.html" in result.output and "skipped" in result.output and "wrote " in result.output
    again = runner.invoke(app, ["analyse", str(tmp_path / "b"), "--no-mixed-models"])
    assert again.exit_code == 0, again.output
    assert "is up to date" in again.output and "wrote " not in again.output  # it had said it wrote every file
    shown = runner.invoke(app, ["analyse", "--help"], env={"COLUMNS": "200"}).output
    assert "--no-mixed-models" in shown and "--no-no-mixed-models" not in shown  # typer had added a negation


def test_explain_command_summarises_per_model(tmp_path):
    """Given no --config, train and explain use the config the bundle was started with (tiny here: the
    default profile's 64 px on 32 px radiographs was refused)."""
    assert runner.invoke(app, ["cohort", "synth", "--config", "tiny", "--out", str(tmp_path / "b")]).exit_code == 0
    again = runner.invoke(app, ["cohort", "synth", "--out", str(tmp_path / "b")])  # its own config, not the default
    assert again.exit_code == 0 and "up to date" in again.output, again.output
    trained = runner.invoke(app, ["train", "--bundle", str(tmp_path / "b")])
    assert trained.exit_code == 0, trained.output
    refused = runner.invoke(app, ["explain", "--bundle", str(tmp_path / "b"), "--method", "surrogate"])
    assert refused.exit_code == 2 and "--method applies to --image-model" in refused.output
    result = runner.invoke(app, ["explain", "--bundle", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "mlp-correct:" in result.output and "inverse GVR frames" in result.output
    bad = runner.invoke(app, ["explain", "--config", "tiny", "--bundle", str(tmp_path / "b"), "--model", "nope"])
    assert bad.exit_code == 2 and "models present" in bad.output


def test_baselines_and_audit_commands(tmp_path, monkeypatch):
    root = str(tmp_path / "study")
    assert runner.invoke(app, ["audit", str(tmp_path)]).exit_code == 2
    assert runner.invoke(app, ["train", "--config", "tiny", "--bundle", root]).exit_code == 0
    assert runner.invoke(app, ["explain", "--config", "tiny", "--bundle", root]).exit_code == 0
    result = runner.invoke(app, ["baselines", "--config", "tiny", "--bundle", root])
    assert result.exit_code == 0, result.output
    audit = runner.invoke(app, ["audit", root])
    assert audit.exit_code == 0 and "mlp-correct:" in audit.output and "pointing game" in audit.output
    assert "out of date" not in audit.output
    import json

    from analysis.fidelity_targets import baseline_checks

    checks = baseline_checks(json.loads((tmp_path / "study/baselines/audit.json").read_text()))
    assert {name.split(":")[0] for name in checks} == {"mlp-correct", "mlp-overfitted"}  # the phantom has masks
    for name, target in checks.items():  # the relevance mass target, judged and printed with both commands
        line = f"[{'met' if target['met'] else 'NOT met'}] {name}: {target['value']:z.3f}"
        assert line in audit.output and line in result.output
    assert runner.invoke(app, ["audit", "--bundle", root]).output == audit.output
    assert runner.invoke(app, ["audit", root, "--bundle", root]).output == audit.output
    twice = runner.invoke(app, ["audit", root, "--bundle", str(tmp_path)])
    assert twice.exit_code == 2 and "the bundle is named more than once, differently" in twice.output
    options = runner.invoke(app, ["audit", "--bundle", str(tmp_path / "stduy"), "--bundle", root])  # not the last kept
    assert options.exit_code == 2 and "named more than once" in options.output
    assert runner.invoke(app, ["audit", root, "--bundle", str(tmp_path / "." / "study") + "/"]).output == audit.output
    for command in (["fidelity"], ["explain"], ["baselines"], ["readers", "simulate"], ["report"], ["analyse"]):
        missing = runner.invoke(app, [*command, str(tmp_path / "stduy")])  # refused before any work, as audit is
        assert missing.exit_code == 2 and "stduy: no such bundle directory" in missing.output, command
    monkeypatch.chdir(tmp_path)  # given neither, the bundle is ./study, where `make reproduce` writes
    assert runner.invoke(app, ["audit"]).output == audit.output
    monkeypatch.chdir(tmp_path / "study")
    missing = runner.invoke(app, ["audit"])
    assert missing.exit_code == 2 and "study: no such bundle directory (the default" in missing.output
    # GVRs made again after the audit: the audit says its decisions are of GVRs the bundle no longer holds
    assert runner.invoke(app, ["explain", "--config", "tiny", "--bundle", root, "--model", "mlp-correct"]).exit_code == 0
    stale = runner.invoke(app, ["audit", root])
    assert stale.exit_code == 0 and "warning: stage 'baselines' is out of date" in stale.output


@pytest.mark.parametrize("option", ["--out", "--bundle", None])
def test_bundle_commands_take_both_option_names(option, tmp_path):
    """`--bundle` and `--out` name the study bundle in every command that builds one, as does its first argument."""
    named = [str(tmp_path / "b")] if option is None else [option, str(tmp_path / "b")]
    result = runner.invoke(app, ["cohort", "synth", "--config", "tiny", *named, "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "cohort" in Bundle(tmp_path / "b").stages
    for command in (["reproduce"], ["train"], ["cohort", "ingest"]):
        help_text = runner.invoke(app, [*command, "--help"]).output
        assert "--bundle" in help_text and "--out" in help_text, command


BUNDLE_COMMANDS = (["cohort", "synth"], ["cohort", "ingest"], ["train"], ["explain"], ["baselines"], ["fidelity"],
                   ["audit"], ["analyse"], ["reproduce"], ["report"], ["readers", "simulate"], ["readers", "packet"])


@pytest.mark.parametrize("command", BUNDLE_COMMANDS, ids=" ".join)
def test_every_bundle_command_takes_the_bundle_as_its_argument_or_as_the_option(command):
    shown = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"}).output
    assert "[OPTIONS] [BUNDLE]" in shown and "--bundle" in shown and "Default: study." in shown, shown


def test_validate_takes_a_table_or_the_bundle_as_its_argument_or_the_option(tmp_path, monkeypatch):
    root = tmp_path / "study"
    assert runner.invoke(app, ["cohort", "synth", "--config", "tiny", str(root), "--workers", "1"]).exit_code == 0
    shown = {runner.invoke(app, args).output for args in (["validate", str(root)], ["validate", "--bundle", str(root)])}
    assert shown == {f"ok: bundle {root} is valid\n"}
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["validate"]).output == "ok: bundle study is valid\n"
    table = runner.invoke(app, ["validate", "study/tables/patients.parquet", "--bundle", "study"])
    assert table.exit_code == 2 and "give one or the other" in table.output


def test_analyse_takes_the_bundle_as_the_option(tmp_path):
    assert runner.invoke(app, ["cohort", "synth", "--config", "tiny", str(tmp_path / "b"), "--workers", "1"]).exit_code == 0
    result = runner.invoke(app, ["analyse", "--bundle", str(tmp_path / "b"), "--no-mixed-models"])
    assert result.exit_code == 0 and "wrote " in result.output, result.output


@pytest.fixture(scope="module")
def trained_tiny(tiny_trained, tmp_path_factory):
    """The session's tiny bundle through training, copied: its cohort and training were built from Python, so it has
    no config.yaml (as a bundle made before commands recorded it). `gvr train` runs the same build_training
    (test_train_command_prints_aucs_and_targets runs the command itself)."""
    return copy_bundle(tiny_trained, tmp_path_factory.mktemp("cli") / "tiny")


def test_cohort_synth_records_its_config_for_the_commands_that_follow(tmp_path):
    result = runner.invoke(app, ["cohort", "synth", "--config", "tiny", "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((tmp_path / "b/config.yaml").read_text())["profile"] == "tiny"


def test_explain_without_config_rebuilds_networks_from_their_checkpoints(trained_tiny, clean_env):
    """The README's `gvr explain --bundle DIR` on a bundle trained with another profile than the default."""
    assert not (trained_tiny / "config.yaml").exists()
    run = subprocess.run([gvr_executable(), "explain", "--bundle", str(trained_tiny)], capture_output=True, text=True,
                         timeout=600, env=clean_env)
    assert run.returncode == 0, run.stderr
    assert "GVRs" in run.stdout and "size mismatch" not in run.stderr


@pytest.mark.parametrize(("command", "tampered", "writer"), [
    (["explain", "--force", "--bundle"], "tables/predictions.parquet", "train"),
    (["baselines", "--force", "--bundle"], "tables/gvr_index.parquet", "explain"),
    (["analyse", "--force"], "tables/predictions.parquet", "train")])
def test_a_tampered_bundle_is_one_message_without_traceback(command, tampered, writer, trained_tiny, tmp_path,
                                                            clean_env):
    root = tmp_path / "tampered"
    shutil.copytree(trained_tiny, root)
    if "explain" not in Bundle(root).stages and command[0] != "explain":
        subprocess.run([gvr_executable(), "explain", "--bundle", str(root)], check=True, capture_output=True,
                       timeout=600, env=clean_env)
    path = root / tampered
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    run = subprocess.run([gvr_executable(), *command, str(root)], capture_output=True, text=True, timeout=600,
                         env=clean_env)
    assert run.returncode == 1, (run.stdout, run.stderr)
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and f"{tampered}: content changed since stage '{writer}' wrote it" in errors[0]
    debug = subprocess.run([gvr_executable(), "--debug", *command, str(root)], capture_output=True, text=True,
                           timeout=600, env=clean_env)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ManifestMismatchError" in debug.stderr


def test_only_an_input_refused_before_writing_says_nothing_was_written():
    # A table a stage could not write stops that stage after its earlier files: "nothing was written" is false.
    from data_schema.validate import Problem, TableValidationError
    from modelling.cli.app import _error_text
    from modelling.cohort.ingest import IngestError

    problem = Problem("tables/x.parquet", 3, "bnp_ng_l", "0", "must be > 0")
    assert _error_text(TableValidationError([problem])).endswith("1 problem(s)")
    assert _error_text(IngestError([problem])).endswith("1 problem(s); nothing was written")


def test_ctrl_c_says_a_rerun_resumes_and_exits_130(tmp_path, monkeypatch, capsys):
    """typer turns a KeyboardInterrupt into a quiet exit with status 130, so the documented message was
    never printed (the log's last line was only the stage's failure)."""
    import analysis.analyse
    from modelling.cli.app import INTERRUPTED, main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(analysis.analyse, "analyse_bundle", interrupted)
    assert main(["analyse", str(tmp_path)]) == 130
    assert INTERRUPTED in capsys.readouterr().err
    assert main(["schema", "no-such-command"]) == 2  # other exits keep their status and say nothing of it
    assert INTERRUPTED not in capsys.readouterr().err


def test_a_folder_that_is_not_a_bundle_is_refused_with_exit_2_by_every_command(tmp_path, capsys):
    """README: 2 when a command refuses the bundle it is pointed at before doing any work; explain, baselines,
    fidelity and analyse exited 1 there while audit, report and validate exited 2."""
    from modelling.cli.app import main

    empty = tmp_path / "empty"
    empty.mkdir()
    for command in (["explain"], ["baselines"], ["fidelity"], ["analyse"], ["audit"]):
        assert main([*command, str(empty)]) == 2, command
        assert "no study bundle" in capsys.readouterr().err


def test_a_bundle_another_process_writes_is_refused_with_exit_2_when_told_not_to_wait(tiny_trained, tmp_path,
                                                                                       capsys, monkeypatch):
    from modelling.cli.app import main

    import time

    root = copy_bundle(tiny_trained, tmp_path / "b")
    ready, release = tmp_path / "ready", tmp_path / "release"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import pathlib, sys, time\nfrom data_schema import Bundle\n"
        "with Bundle(sys.argv[1]).writing('a stage of another process'):\n"
        "    pathlib.Path(sys.argv[2]).touch()\n"
        "    while not pathlib.Path(sys.argv[3]).exists():\n        time.sleep(0.05)\n"),
        str(root), str(ready), str(release)], env=clean_environment(), cwd=Path(__file__).resolve().parents[3])
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        import data_schema.bundle

        monkeypatch.setenv("GVR_BUNDLE_WAIT", "0")
        monkeypatch.setattr(data_schema.bundle, "_WROTE_BEFORE", False)  # as a command's own process starts
        assert main(["explain", "--config", "tiny", str(root)]) == 2
        # met between two stages of a command that had written already, it is a failure of work, not a refusal
        monkeypatch.setattr(data_schema.bundle, "_WROTE_BEFORE", True)
        assert main(["explain", "--config", "tiny", str(root)]) == 1
    finally:
        release.touch()
        holder.wait(timeout=60)
    err = capsys.readouterr().err
    assert "is being written by" in err and "was not started" in err and "Traceback" not in err


def test_analyse_and_report_refuse_the_tables_of_a_stage_that_did_not_complete(tmp_path, capsys):
    from data_schema import Bundle
    from modelling.cli.app import main
    from tests.examples import examples

    bundle = Bundle(tmp_path / "b")
    try:
        with bundle.stage("cohort", config={"v": 1}) as st:
            st.write_table("patients", examples()["patients"])
            raise RuntimeError("stopped")
    except RuntimeError:
        pass
    for command in (["analyse", "--no-mixed-models"], ["report", "--out", str(tmp_path / "html")], ["report"]):
        assert main([command[0], str(bundle.root), *command[1:]]) == 2, command
        assert "stage 'cohort' did not complete" in capsys.readouterr().err
    assert not (tmp_path / "html").exists() and not any((bundle.root / d).exists() for d in ("analysis", "report"))


def test_a_file_named_as_the_bundle_is_refused_in_words(tmp_path, capsys):
    """`--out afile.csv` gave "FileExistsError: [Errno 17]", and `gvr audit afile.csv` "no such bundle directory"."""
    from modelling.cli.app import main

    afile = tmp_path / "afile.csv"
    afile.write_text("x\n")
    for command in (["cohort", "synth", "--config", "tiny", "--out", str(afile)], ["train", str(afile)],
                    ["audit", str(afile)], ["schema", "export", "--out", str(afile)]):
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert "a file, not a" in err and "FileExistsError" not in err, command
    assert afile.read_text() == "x\n"


def test_a_study_is_not_started_among_a_folders_own_files(tmp_path, capsys):
    """`gvr reproduce --out ~` wrote images/, tables/ and config.yaml among the user's files (a config.yaml of
    theirs replaced); each command that starts a bundle now refuses a folder of other files, before writing."""
    from data_schema.bundle import LOCK
    from modelling.cli.app import main

    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text("mine\n")
    (home / "notes.txt").write_text("mine\n")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "p.csv").write_text("patient_id,sex,age_years\n")
    (inputs / "b.csv").write_text("patient_id,collected_at,bnp_ng_l\n")
    (inputs / "m.csv").write_text("file,patient_id,acquired_at,view\n")
    (inputs / "salt").write_text("a salt of at least sixteen bytes\n")
    for command in (["cohort", "synth", "--config", "tiny", "--out", str(home)],
                    ["reproduce", "--config", "tiny", "--out", str(home)],
                    ["cohort", "ingest", "--patients", str(inputs / "p.csv"), "--bnp", str(inputs / "b.csv"),
                     "--manifest", str(inputs / "m.csv"), "--salt-file", str(inputs / "salt"), "--out", str(home)]):
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert "is not a study bundle" in err and "config.yaml, notes.txt" in err, (command, err)
        assert sorted(p.name for p in home.iterdir()) == ["config.yaml", "notes.txt"], command
    assert (home / "config.yaml").read_text() == "mine\n"
    # what a first run stopped before its manifest leaves is no one's files: that folder is a new bundle
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    (stopped / LOCK).write_text("")
    assert main(["cohort", "synth", "--config", "tiny", "--out", str(stopped)]) == 0
    assert (stopped / "manifest.json").is_file()


def test_packet_and_report_of_a_bundle_without_their_stages_say_what_to_run(tmp_path, capsys):
    """They said "gvr_index.parquet: not recorded in manifest.json", and "beyond.py failed: NotInManifestError"."""
    from modelling.cli.app import main
    from modelling.config import load_config
    from modelling.stages.cohort import build_cohort

    root = tmp_path / "b"
    build_cohort(load_config("tiny"), root, workers=1)
    assert main(["readers", "packet", str(root), "--out", str(tmp_path / "pk"), "--key", str(tmp_path / "k.csv")]) == 2
    assert f"no GVRs yet; run `gvr explain {root}` first" in capsys.readouterr().err
    for extra in ([], ["--out", str(tmp_path / "html")]):
        assert main(["report", str(root), *extra]) == 2
        err = capsys.readouterr().err
        assert "needs the stage(s) train" in err and f"gvr reproduce {root}" in err
    assert not (tmp_path / "pk").exists() and not (tmp_path / "html").exists()


def test_shortcut_options_out_of_range_are_named_as_typed(tmp_path, capsys):
    from modelling.cli.app import main

    out = tmp_path / "sc"
    assert main(["benchmark", "shortcuts", "--strengths", "0,2", "--out", str(out)]) == 2
    assert "error: --strengths: must list shares from 0 to 1" in capsys.readouterr().err
    assert main(["benchmark", "shortcuts", "--negative-share", "2", "--out", str(out)]) == 2
    assert "error: --negative-share: must lie in 0-1" in capsys.readouterr().err
    # a share given twice ran as one strength and printed rank correlations over it
    assert main(["benchmark", "shortcuts", "--strengths", "1,1", "--out", str(out)]) == 2
    assert "error: --strengths: must list each share once; got [1.0, 1.0]" in capsys.readouterr().err
    assert not out.exists()
