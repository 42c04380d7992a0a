"""Run the analysts' notebooks (notebooks/*.ipynb) with papermill against a store and convert them to HTML.

    runs = run_notebooks(out_dir, parameters={"store_url": url})

Each notebook's first cell is tagged `parameters` (papermill replaces it); the kernel is this Python (the
project's virtual environment): the `python3` kernelspec when it runs this interpreter, else one registered
under the environment's own prefix at run time (`pressfleet-venv`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from pressfleet.analysis.results import NotebookRun
from pressfleet.paths import ROOT

NOTEBOOKS = ROOT / "notebooks"
OWN_KERNEL = "pressfleet-venv"


def notebook_paths(names: list[str] | None = None, directory: Path = NOTEBOOKS) -> list[Path]:
    paths = sorted(p for p in directory.glob("*.ipynb") if not p.name.startswith("."))
    if names:
        wanted = {n.removesuffix(".ipynb") for n in names}
        unknown = wanted - {p.stem for p in paths}
        if unknown:
            raise ValueError(f"no such notebook(s): {', '.join(sorted(unknown))} (have: "
                             f"{', '.join(p.stem for p in paths)})")
        paths = [p for p in paths if p.stem in wanted]
    return paths


def _runs_this_python(argv: list[str]) -> bool:
    if not argv:
        return False
    first = argv[0]
    if first in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
        return True  # jupyter_client runs these names as sys.executable
    try:
        return Path(first).resolve() == Path(sys.executable).resolve()
    except OSError:
        return False


def kernel_name() -> str:
    """A kernel that runs this interpreter (so the notebooks import this environment's packages)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    ksm = KernelSpecManager()
    for name in ("python3", OWN_KERNEL):
        try:
            if _runs_this_python(ksm.get_kernel_spec(name).argv):
                return name
        except NoSuchKernel:
            continue
    from ipykernel.kernelspec import install

    install(kernel_name=OWN_KERNEL, display_name="Python 3 (pressfleet)", prefix=sys.prefix)
    return OWN_KERNEL


def run_notebook(path: Path, out_dir: Path, parameters: dict[str, Any], *, kernel: str | None = None,
                 timeout: float = 600) -> NotebookRun:
    """Execute one notebook into `out_dir` (the executed .ipynb and its .html); errors are reported, not raised."""
    import nbformat
    import papermill as pm
    from nbconvert import HTMLExporter

    out_dir.mkdir(parents=True, exist_ok=True)
    out_nb = out_dir / path.name
    html = out_dir / f"{path.stem}.html"
    t0 = time.monotonic()
    error = None
    try:
        pm.execute_notebook(str(path), str(out_nb), parameters=parameters, kernel_name=kernel or kernel_name(),
                            cwd=str(ROOT), progress_bar=False, log_output=False, execution_timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - papermill's PapermillExecutionError carries the cell's error
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"[:2000]
    seconds = time.monotonic() - t0
    html_path = None
    if out_nb.exists():
        try:
            body, _ = HTMLExporter().from_notebook_node(nbformat.read(str(out_nb), as_version=4))
            html.write_text(body)
            html_path = str(html)
        except Exception as exc:  # noqa: BLE001
            error = error or f"HTML conversion failed: {exc}"
    return NotebookRun(name=path.stem, ok=error is None, seconds=round(seconds, 2), notebook=str(out_nb),
                       html=html_path, error=error)


def run_notebooks(out_dir: Path, parameters: dict[str, Any], names: list[str] | None = None, *,
                  timeout: float = 600) -> list[NotebookRun]:
    kernel = kernel_name()
    return [run_notebook(p, out_dir, parameters, kernel=kernel, timeout=timeout) for p in notebook_paths(names)]


def notebooks_markdown(runs: list[NotebookRun], directory: Path) -> str:
    from pressfleet.analysis.report import file_link

    ok = sum(r.ok for r in runs)
    lines = ["# Analysis notebooks", "", f"{ok} of {len(runs)} notebook(s) ran against the metrics store; "
             f"results in {file_link(directory, str(directory))}.", "",
             "| notebook | result | seconds | HTML | notebook |", "| --- | --- | --- | --- | --- |"]
    for r in runs:
        res = "ok" if r.ok else f"**failed**: {r.error}".replace("|", "\\|")
        lines.append(f"| {r.name} | {res} | {r.seconds:.1f} | "
                     f"{file_link(r.html, r.name + '.html') if r.html else '-'} | "
                     f"{file_link(r.notebook, r.name + '.ipynb') if Path(r.notebook).exists() else '-'} |")
    return "\n".join(lines)
