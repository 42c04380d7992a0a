"""Every notebook in notebooks/ runs (papermill, this environment's kernel) against a store of generated history,
through the analysis-notebooks flow, and comes out as HTML with the analysis' own figures and charts."""

from __future__ import annotations

import json
from pathlib import Path

from pressfleet.analysis.capacity import capacity_report
from pressfleet.analysis.notebooks import NOTEBOOKS, notebook_paths


def test_every_notebook_has_a_parameters_cell():
    paths = notebook_paths()
    assert {p.stem for p in paths} >= {"capacity", "cost", "anomalies"}
    for p in paths:
        nb = json.loads(p.read_text())
        first = next(c for c in nb["cells"] if c["cell_type"] == "code")
        assert "parameters" in first["metadata"].get("tags", []), p
        assert "store_url = None" in "".join(first["source"]), p


def test_the_notebooks_flow_runs_every_notebook(prefect_harness, fleet, state):
    from flows.analysis_notebooks import analysis_notebooks

    hist, url = fleet
    st = analysis_notebooks(store_url=url, return_state=True)
    res = st.result()
    assert [r.name for r in res.notebooks] == sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    for r in res.notebooks:
        assert r.ok, (r.name, r.error)
        assert r.seconds < 60
        executed = json.loads(Path(r.notebook).read_text())
        outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
        assert outputs and not [o for o in outputs if o["output_type"] == "error"], r.name
        assert executed["metadata"]["papermill"]["parameters"]["store_url"] == url
        html = Path(r.html).read_text()
        assert "data:image/png;base64," in html  # the charts are in the page
        for host in hist.hosts:
            assert host in html, (r.name, host)
    cap = Path(next(r.html for r in res.notebooks if r.name == "capacity")).read_text()
    t = capacity_report(url, horizon_days=30).table
    disk = next(i for i in hist.incidents if i.kind == "disk_filling")
    days = t[(t["host"] == disk.host) & (t["resource"] == "disk:/")].iloc[0]["days_to_full"]
    assert f"{days:.6f}"[:6] in cap  # the notebook's table shows the analysis' figure
    md = Path(res.markdown).read_text()
    assert md.count("file://") >= 2 * len(res.notebooks)
    assert sorted(r.name for r in res.notebooks) == ["anomalies", "capacity", "cost"]
    assert "3 of 3 notebook(s) ran against the metrics store" in md
