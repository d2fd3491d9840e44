"""The set-up script: what a machine without apt or without root is told, and the R stack it installs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETUP = ROOT / "scripts" / "setup.sh"
R_PACKAGES = "r-base-core r-cran-lme4 r-cran-lmertest r-cran-emmeans r-cran-proc r-cran-psych chromium chromium-driver"


def fake_path(tmp_path, *, apt: bool, uid: int) -> str:
    """A PATH where dpkg-query reports every package missing and `id -u` prints `uid`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "grep", "cat", "sha256sum", "cut", "printf"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    (bin_dir / "dpkg-query").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    if apt:
        (bin_dir / "apt-get").write_text("#!/bin/sh\necho apt-get must not run here >&2\nexit 99\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return str(bin_dir)


def run_setup(path: str) -> subprocess.CompletedProcess:
    bash = shutil.which("bash")
    env = {"PATH": path, "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run([bash, str(SETUP)], capture_output=True, text=True, env=env, timeout=60)


def test_without_apt_the_message_lists_what_to_install(tmp_path):
    result = run_setup(fake_path(tmp_path, apt=False, uid=0))
    assert result.returncode == 1
    assert "apt-get is not available" in result.stderr
    assert f"apt-get install {R_PACKAGES}" in result.stderr


def test_without_root_the_message_lists_the_exact_command(tmp_path):
    result = run_setup(fake_path(tmp_path, apt=True, uid=1000))
    assert result.returncode == 1
    assert "Not running as root" in result.stderr
    assert f"apt-get install -y --no-install-recommends {R_PACKAGES}" in result.stderr
    assert "apt-get must not run here" not in result.stderr


@pytest.mark.r
def test_r_has_the_packages_pymer4_needs():
    rscript = shutil.which("Rscript")
    assert rscript, "Rscript is not on PATH: the set-up installs r-base-core"
    code = 'for (p in c("lme4", "lmerTest", "emmeans")) suppressPackageStartupMessages(library(p, character.only = TRUE)); cat(as.character(getRversion()))'
    result = subprocess.run([rscript, "-e", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("4.")


def test_pinned_stack_is_what_is_installed():
    from importlib import metadata

    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        name, _, version = line.partition("==")
        pins[name.lower().replace("_", "-")] = version
    for name in ("pandas", "rpy2", "pymer4", "torch", "pandera", "numpy"):
        installed = metadata.version(name).split("+")[0]
        assert installed == pins[name], f"{name}: installed {installed}, pinned {pins[name]}"
    assert pins["pymer4"] == "0.8.2" and pins["torch"] == "2.13.0"
    assert int(pins["pandas"].split(".")[0]) < 3 and tuple(map(int, pins["rpy2"].split(".")[:2])) < (3, 6)
