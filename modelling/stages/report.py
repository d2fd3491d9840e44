"""The manuscript: render the report scripts in ``reports/`` to self-contained HTML, with or without Quarto.

The reports are Jupyter percent-format Python scripts (``# %%`` cells, Quarto options as ``#|``
lines) that read only the study bundle and the :mod:`analysis` package. Quarto renders them with
``quarto render reports/`` (see ``_quarto.yml``); where Quarto is not installed,
:func:`render_reports` does the same job with jupytext (script to notebook), nbclient (execution, in a
``python3`` kernel of its own per script, whose working directory is ``reports/``; the kernels run
side by side, one per core this process may use) and nbconvert (HTML with every image embedded as
base64). Its :class:`QuartoOptionsPreprocessor` turns the ``#|`` options into what Quarto would make
of them: numbered figures and tables with their captions, alt text on the images, and
``@fig-...``/``@tbl-...`` cross-references as links.

Which bundle a report reads, and the helpers the scripts use, are in :mod:`analysis.manuscript`.

Examples
--------
>>> [p.name for p in report_scripts()]
['beyond.py', 'fidelity.py', 'index.py', 'tables_figures.py']
"""

from __future__ import annotations

import html
import logging
import os
import re
import sys
import tempfile
from pathlib import Path

from analysis.manuscript import BUNDLE_ENV, REPO_ROOT, BundleMissingError
from data_schema.io import atomic_write_bytes
from modelling.progress import progress

__all__ = [
    "REPORTS_DIR", "OUT_DIR", "ReportRenderError", "kernel_env", "report_scripts", "render_report", "render_reports",
    "write_report", "QuartoOptionsPreprocessor",
]

log = logging.getLogger(__name__)

#: The folder of the report scripts.
REPORTS_DIR = REPO_ROOT / "reports"
#: Folder inside the bundle that receives the rendered HTML.
OUT_DIR = "report"


#: The environment before R started in this process, when it had not yet (see :func:`kernel_env`).
_ENV_BEFORE_R = None if "rpy2.rinterface" in sys.modules else dict(os.environ)


def kernel_env(bundle: str | Path) -> dict[str, str]:
    """The environment of the report kernel: this process's, with ``GVR_BUNDLE`` set to `bundle`.

    Once R has started in this process (the analysis stage's mixed models, through rpy2), it has
    prepended ``/usr/lib/R/lib:/usr/lib/x86_64-linux-gnu`` to ``LD_LIBRARY_PATH``; a kernel started
    with that loads the system's libpython and fails on its first compiled import. So R's variables
    are restored to their values before R started: as the mixed models found them when they started
    R, else as this module found them when it was imported before R, else dropped.
    """
    from analysis.mixed_models import lme4

    env = dict(os.environ)
    if "rpy2.rinterface" in sys.modules:
        seen = lme4.ENV_BEFORE_R if lme4.ENV_BEFORE_R is not None else (
            {name: _ENV_BEFORE_R.get(name) for name in lme4.R_VARIABLES} if _ENV_BEFORE_R is not None else {})
        for name in lme4.R_VARIABLES:
            before = seen.get(name)
            if before is None:
                env.pop(name, None)
            else:
                env[name] = before
    env[BUNDLE_ENV] = str(Path(bundle).resolve())
    return env


class ReportRenderError(RuntimeError):
    """A report script failed while it ran; the message names the script and the error."""


# ---- rendering ------------------------------------------------------------------------------------


def report_scripts(reports_dir: str | Path = REPORTS_DIR) -> list[Path]:
    """The report scripts: ``reports/*.py`` except helpers whose name starts with ``_`` (as Quarto)."""
    return sorted(p for p in Path(reports_dir).glob("*.py") if not p.name.startswith(("_", ".")))


_OPTION = re.compile(r"^#\|\s*([\w-]+)\s*:\s*(.*)$")
_XREF = re.compile(r"@((?:fig|tbl)-[\w-]+)")


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


try:
    from nbconvert.preprocessors import Preprocessor as _Preprocessor
except ImportError:  # nbconvert missing: render_reports raises when called
    _Preprocessor = object


class QuartoOptionsPreprocessor(_Preprocessor):
    """Apply a cell's Quarto ``#|`` options after execution, as Quarto would render them.

    Figures (``label: fig-...``) become ``<figure id=...>`` with the image's alt text (``fig-alt``)
    and the numbered caption (``fig-cap``); tables (``label: tbl-...``) get an anchor and the numbered
    caption (``tbl-cap``) above their output; ``@fig-...``/``@tbl-...`` in markdown become links;
    ``#|`` lines leave the displayed code, and cells with ``echo: false`` lose their code.
    """

    def preprocess(self, nb, resources):
        numbers: dict[str, str] = {}
        empty: set[str] = set()  # floats whose cell drew nothing (what the bundle cannot show)
        counts = {"fig": 0, "tbl": 0}
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            options, code = {}, []
            for line in cell.source.splitlines():
                m = _OPTION.match(line)
                if m:
                    options[m.group(1)] = _unquote(m.group(2))
                else:
                    code.append(line)
            cell.source = "\n".join(code).strip("\n")
            cell.metadata["quarto"] = options
            # what a cell wrote to stderr (a library's warning: matplotlib's font cache, say) is not the
            # manuscript's: it goes to the terminal, once per cell, and off the page
            said = [o for o in cell.get("outputs", []) if o.get("output_type") == "stream" and o.get("name") == "stderr"]
            if said:
                text = "".join(o.get("text", "") for o in said).strip().splitlines()
                log.warning("a report cell wrote to stderr (%d line(s), left off the page): %s", len(text),
                            text[0] if text else "")
                cell.outputs = [o for o in cell.outputs if o not in said]
            label = options.get("label", "")
            kind = label.split("-", 1)[0]
            shown = any(o.get("output_type") in ("display_data", "execute_result", "stream")
                        for o in cell.get("outputs", []))
            if kind in counts and shown:  # a float whose cell drew nothing gets no number and no caption
                counts[kind] += 1
                numbers[label] = f"{'Figure' if kind == 'fig' else 'Table'} {counts[kind]}"
                self._float(cell, kind, label, numbers[label], options)
            elif kind in counts:
                empty.add(label)
            if str(options.get("echo", "")).lower() == "false":
                cell.source = ""
                cell.metadata.setdefault("jupyter", {})["source_hidden"] = True
        def link(text: str) -> str:
            def one(m):
                if m.group(1) in numbers:
                    return f"[{numbers[m.group(1)]}](#{m.group(1)})"
                # a reference to a float this bundle could not draw says so rather than showing its label, in
                # words that read inside a sentence ("in @tbl-a and @fig-b")
                if m.group(1) in empty:
                    return f"a {'figure' if m.group(1).startswith('fig-') else 'table'} not drawn for this bundle"
                return m.group(0)
            return _XREF.sub(one, text)

        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = link(cell.source)
            for out in cell.get("outputs", []):
                if "text/markdown" in out.get("data", {}):
                    out["data"]["text/markdown"] = link(out["data"]["text/markdown"])
        return nb, resources

    @staticmethod
    def _float(cell, kind: str, label: str, number: str, options: dict[str, str]) -> None:
        from nbformat.v4 import new_output

        e = html.escape
        cap = f'<figcaption><strong>{e(number)}:</strong> {e(options.get(f"{kind}-cap", ""))}</figcaption>'
        outputs = []
        for out in cell.outputs:
            data = out.get("data", {}) if out.get("output_type") in ("display_data", "execute_result") else {}
            if kind == "fig" and "image/png" in data:
                alt = e(options.get("fig-alt", options.get("fig-cap", "")))
                png = data["image/png"].replace("\n", "")
                outputs.append(new_output("display_data", data={"text/html": (
                    f'<figure id="{e(label)}" class="quarto-float"><img src="data:image/png;base64,{png}" '
                    f'alt="{alt}" style="max-width:100%">{cap}</figure>')}))
            else:
                outputs.append(out)
        if kind == "tbl" or not any(f'id="{label}"' in str(o.get("data", {}).get("text/html", "")) for o in outputs):
            anchor = f'<div id="{e(label)}" class="quarto-float-caption">{cap.replace("figcaption", "p")}</div>'
            outputs.insert(0, new_output("display_data", data={"text/html": anchor}))
        cell.outputs = outputs


def _title(nb) -> str | None:
    import yaml

    for cell in nb.cells[:1]:
        text = cell.source.strip()
        if text.startswith("---"):
            header = yaml.safe_load(text.strip("-\n").split("\n---")[0]) or {}
            return str(header.get("title")) if header.get("title") else None
    return None


def render_report(script: str | Path, bundle: str | Path, *, timeout: int = 600) -> bytes:
    """Execute one report script against `bundle` and return it as self-contained HTML.

    Parameters
    ----------
    script : path-like
        A percent-format report script.
    bundle : path-like
        The study bundle (``GVR_BUNDLE`` is set to it while the kernel runs).
    timeout : int, default 600
        Seconds allowed per cell.

    Returns
    -------
    bytes
        UTF-8 HTML with every image embedded as base64.

    Raises
    ------
    ReportRenderError
        When a cell fails; the message names the script and ends with the error raised in the
        cell (for a missing or changed bundle file, the bundle's error naming that file).
    """
    return _render_scripts([Path(script)], bundle, timeout=timeout)[0]


def kernels_at_once() -> int:
    """How many report kernels run at once: one per core this process may use (its CPU affinity where the
    system has one, so a batch job's share rather than the machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _render_scripts(scripts: list[Path], bundle: str | Path, *, timeout: int = 600, done=None) -> list[bytes]:
    """Each script's page, in the order given; the kernels run side by side, at most one per core.

    A page's time is mostly its kernel's start and imports (about 2.5 of 3.5 s each on 2 cores for
    the tiny study), which overlap across kernels where one after another they would add up. Every
    kernel is its own process with its own notebook, as Quarto runs them, so no page sees another's
    names. `done` is called with each script's name as its page is executed. Once a page fails no further
    kernel starts; the first failure in the given order is raised, after every kernel has stopped.

    The kernels are driven from a thread of their own. nbclient, run in the main thread, answers Ctrl-C by
    shutting its kernel down from a signal handler and then fails on the kernel it no longer has
    (``AssertionError``), so an interrupted manuscript printed tracebacks and exited 1. Outside the main
    thread it sets no handler: Ctrl-C reaches the main thread as ``KeyboardInterrupt``, every kernel is shut
    down, and the interrupt goes on to the caller (the command line's "interrupted", exit 130).
    """
    import asyncio
    import threading

    scripts = [Path(script).resolve() for script in scripts]
    env = kernel_env(bundle)

    async def run_all():
        gate = asyncio.Semaphore(kernels_at_once())
        failed = []

        async def one(script):
            async with gate:
                if failed:  # a page failed: the manuscript will not be written, so start no more kernels
                    return None
                log.info("rendering %s against %s", script.name, bundle)
                try:
                    page = await _execute(script, env, bundle, timeout)
                except Exception:
                    failed.append(script.name)
                    raise
                if done is not None:
                    done(script.name)
                return page

        return await asyncio.gather(*(one(script) for script in scripts), return_exceptions=True)

    loop = asyncio.new_event_loop()
    task = loop.create_task(run_all())
    outcome: dict = {}
    ended = threading.Event()

    def drive():
        asyncio.set_event_loop(loop)
        try:
            outcome["results"] = loop.run_until_complete(task)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            outcome["error"] = exc
        finally:
            # nbclient's own helpers (its kernel-alive polls) outlive a cancelled cell: end them here
            left = asyncio.all_tasks(loop)
            for pending in left:
                pending.cancel()
            if left:
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.close()
            ended.set()

    threading.Thread(target=drive, name="report-kernels", daemon=True).start()
    # waited on as an Event, not by Thread.join: a join that Ctrl-C interrupts can leave the thread
    # looking finished, and the kernels were then left running after the command exited
    try:
        while not ended.wait(0.2):
            pass
    except KeyboardInterrupt:
        try:
            loop.call_soon_threadsafe(task.cancel)  # each kernel is shut down as its task is cancelled
        except RuntimeError:  # the loop had just closed: every kernel is down already
            pass
        ended.wait(60)
        raise
    if "error" in outcome:
        raise outcome["error"]
    results = outcome["results"]
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [_html(script, nb) for script, nb in zip(scripts, results)]


async def _execute(script: Path, env: dict[str, str], bundle, timeout: int):
    """The script's notebook, executed in a kernel of its own (Unix sockets in a private directory).

    This function owns the kernel, not nbclient: whether the notebook ran, failed or was cancelled
    (Ctrl-C), the kernel is shut down here, so none outlives the command and nothing is left for
    nbclient's exit-time clean-up to trip over. The kernel's own stdout and stderr (its start-up
    messages, not the cells' output, which the notebook keeps) go to a log in that directory; the
    tail is quoted when the kernel dies.
    """
    import atexit

    import jupytext
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, DeadKernelError
    from traitlets.config import Config

    nb = jupytext.read(script, fmt="py:percent")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    # The kernel is local: Unix sockets in a private directory, not TCP on localhost, so no port is
    # open to other users and ipykernel has no unencrypted-TCP warning to print. One directory per
    # kernel, so kernels started side by side never draw the same socket names.
    with tempfile.TemporaryDirectory(prefix="gvr-kernel-") as private:
        ipc = Config()
        ipc.KernelManager.transport = "ipc"
        ipc.KernelManager.ip = str(Path(private) / "kernel")
        km = AsyncKernelManager(kernel_name="python3", config=ipc)
        client = NotebookClient(nb, km=km, timeout=timeout, allow_errors=False, log=_NBCLIENT_LOG,
                                resources={"metadata": {"path": str(script.parent.parent)}})  # as Quarto: execute-dir project
        kernel_log = Path(private) / "kernel.log"
        finished = False
        with kernel_log.open("wb") as output:
            try:
                await client.async_execute(env=env, stdout=output, stderr=output)
                finished = True
            except CellExecutionError as exc:
                error = f"{exc.ename}: {exc.evalue}" if getattr(exc, "ename", None) else str(exc).strip().splitlines()[-1]
                raise ReportRenderError(f"{script.name} failed against bundle {bundle}: {error}") from None
            except DeadKernelError as exc:
                tail = " ".join(kernel_log.read_text("utf-8", "replace").strip().splitlines()[-3:])
                raise ReportRenderError(f"{script.name}: its Python kernel died ({exc})" +
                                        (f"; it said: {tail}" if tail else "")) from None
            finally:
                atexit.unregister(client._cleanup_kernel)
                if client.kc is not None:
                    client.kc.stop_channels()
                try:
                    if km.has_kernel:
                        await km.shutdown_kernel(now=not finished)  # a kernel stopped half-way is killed
                except Exception:  # noqa: BLE001 - cancelled while it started: the process is killed below
                    log.debug("%s: the kernel's shutdown failed; killing its process", script.name, exc_info=True)
                finally:  # also when the shutdown itself is cancelled (Ctrl-C while a finished kernel stops)
                    await _kill(km)
    return nb


#: nbclient's own log: what fails reaches the user as this module's error (a cell's, a dead kernel's); its
#: lines ("Kernel died while waiting for execute reply" after Ctrl-C) would only repeat it, so they are kept
#: out of the command's output.
_NBCLIENT_LOG = logging.getLogger(__name__ + ".nbclient")
_NBCLIENT_LOG.setLevel(logging.CRITICAL)


async def _kill(km) -> None:
    """The kernel's process killed if it is still running, and the manager's files and sockets released."""
    import subprocess

    from jupyter_core.utils import ensure_async

    process = getattr(km.provisioner, "process", None)
    if process is not None and process.poll() is None:
        process.kill()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            log.warning("a report kernel (pid %s) did not stop within 10 s of being killed", process.pid)
    try:
        await ensure_async(km.cleanup_resources())
    except Exception:  # noqa: BLE001 - already released by its own shutdown
        pass


def _html(script: Path, nb) -> bytes:
    """An executed notebook as the page Quarto would make of it."""
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import RegexRemovePreprocessor

    title = _title(nb) or script.stem
    nb, _ = QuartoOptionsPreprocessor().preprocess(nb, {})
    nb, _ = RegexRemovePreprocessor(patterns=[r"^---"]).preprocess(nb, {})
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(f"# {title}"))
    for i, cell in enumerate(nb.cells):  # nbformat draws random cell ids; the same bundle gives the same page
        cell.id = f"{script.stem}-{i}"
    exporter = HTMLExporter(template_name="lab", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    return body.encode("utf-8")


def _render_all(bundle: str | Path, scripts: list[Path] | None) -> dict[str, bytes]:
    root = Path(bundle)
    if not (root / "manifest.json").is_file():
        raise BundleMissingError(f"no study bundle at {root}: run `make reproduce` (or `gvr reproduce --out {root}`)")
    scripts = [Path(s) for s in (scripts if scripts is not None else report_scripts())]
    with progress(total=len(scripts), desc="rendering the manuscript", unit="chapter") as bar:
        pages = _render_scripts(scripts, root, done=lambda name: bar.update(1))
    return {f"{script.stem}.html": page for script, page in zip(scripts, pages)}


def render_reports(bundle: str | Path, out_dir: str | Path | None = None, *,
                   scripts: list[Path] | None = None) -> list[Path]:
    """Render every report script against `bundle` into ``<out_dir>/<name>.html``.

    Parameters
    ----------
    bundle : path-like
        The study bundle.
    out_dir : path-like, optional
        Where the HTML goes; default ``<bundle>/report``. Files are written atomically but are not
        recorded in the bundle's manifest (use :func:`write_report` inside a stage for that).
    scripts : list of path, optional
        Scripts to render; default :func:`report_scripts`.

    Returns
    -------
    list of pathlib.Path
        The HTML files written, one per script.

    Raises
    ------
    BundleMissingError
        When `bundle` holds no manifest.
    ReportRenderError
        When a script fails (its message names the script and the error, e.g. the missing file).
    """
    pages = _render_all(bundle, scripts)
    out = Path(out_dir) if out_dir is not None else Path(bundle) / OUT_DIR
    written = []
    for name, data in pages.items():
        atomic_write_bytes(out / name, data)
        written.append(out / name)
    return written


def write_report(stage, *, scripts: list[Path] | None = None, out: str = OUT_DIR) -> list[str]:
    """Render every report script against the stage's bundle and write ``<out>/<name>.html`` through `stage`.

    Parameters
    ----------
    stage : data_schema.Stage
        An open stage of the bundle (e.g. ``bundle.stage("report", config=..., inputs=...)``); each
        page goes through ``stage.write_bytes``, so the manifest records it.
    scripts : list of path, optional
        Scripts to render; default :func:`report_scripts`.
    out : str, default "report"
        Folder inside the bundle.

    Returns
    -------
    list of str
        Bundle-relative paths written.
    """
    pages = _render_all(stage.bundle.root, scripts)
    return [stage.write_bytes(f"{out}/{name}", data).relative_to(stage.bundle.root.resolve()).as_posix()
            for name, data in pages.items()]
