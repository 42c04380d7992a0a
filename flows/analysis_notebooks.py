"""Flow: run the analysts' notebooks (capacity, cost, anomalies) against the metrics store, as HTML pages."""

from __future__ import annotations

from typing import Annotated, Optional

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NONE
from pydantic import Field

from pressfleet.analysis import notebooks as nb
from pressfleet.analysis.report import run_report_dir
from pressfleet.analysis.results import NotebookRun, NotebooksResult, StoreUrl


@task(name="run notebook", cache_policy=NONE, persist_result=False, task_run_name="notebook {name}")
def run_one(name: str, directory, parameters: dict, kernel: str, timeout: float) -> NotebookRun:
    path = nb.notebook_paths([name])[0]
    return nb.run_notebook(path, directory, parameters, kernel=kernel, timeout=timeout)


@flow(name="analysis-notebooks")
def analysis_notebooks(
    store_url: StoreUrl = None,
    notebooks: Annotated[Optional[list[str]], Field(description="Notebook names (empty: every notebook in "
                                                              "notebooks/).")] = None,
    timeout_seconds: Annotated[float, Field(gt=0, le=3600, description="Per cell.")] = 600,
) -> NotebooksResult:
    """Execute every notebook in notebooks/ (or the ones named) with papermill against the metrics store and
    convert each to HTML.

    You get a markdown artifact `analysis-notebooks` with each notebook's result and time and file:// links to
    its HTML page and executed .ipynb (charts included), plus a link artifact per notebook. Everything sits in
    state/reports/analysis-notebooks/<run>/. The run fails if a notebook fails (the others still run).
    `store_url` empty means the default metrics store.

    Args:
        store_url: Metrics store URL passed to every notebook; empty: the default store.
        notebooks: Notebook names (e.g. capacity); empty: every notebook in notebooks/.
        timeout_seconds: Longest a notebook cell may run.
    """
    log = get_run_logger()
    directory = run_report_dir("analysis-notebooks")
    kernel = nb.kernel_name()
    names = [p.stem for p in nb.notebook_paths(notebooks)]
    params = {"store_url": store_url, "output_dir": str(directory)}
    runs = [run_one(n, directory, params, kernel, timeout_seconds) for n in names]
    md = nb.notebooks_markdown(runs, directory)
    (directory / "notebooks.md").write_text(md)
    create_markdown_artifact(key="analysis-notebooks", markdown=md,
                             description=f"{sum(r.ok for r in runs)}/{len(runs)} notebooks ran")
    for r in runs:
        if r.html:
            create_link_artifact(key=f"notebook-{r.name}", link=f"file://{r.html}", link_text=f"{r.name}.html",
                                 description=f"notebook {r.name}: {'ok' if r.ok else 'failed'}")
    result = NotebooksResult(directory=str(directory), markdown=str(directory / "notebooks.md"), notebooks=runs)
    failed = [r for r in runs if not r.ok]
    for r in runs:
        log.info("notebook %s: %s in %.1f s (%s)", r.name, "ok" if r.ok else "FAILED", r.seconds, r.html)
    if failed:
        raise RuntimeError("notebook(s) failed: " + "; ".join(f"{r.name}: {r.error}" for r in failed))
    return result


if __name__ == "__main__":
    print(analysis_notebooks().model_dump_json(indent=2))
