"""What a reviewer sees, in a real headless Chromium: the MLflow UI that `hypernas ui NAME` serves, opening on the
experiment's runs table (its model-training view) with the parent run and, expanded, every trial named by number,
state and value; and `hypernas report`'s HTML file, rendered with the network cut off. Screenshots are kept in
test-artifacts/."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import urllib.request

import pytest

from search import run_experiment
from search.records import read_trials
from tests.browser import ARTIFACTS, chromium, headless_chromium, on_page
from tests.conftest import ROOT
from tests.helpers import tiny_config
from tests.servers import BIN, free_port, stop_group

pytestmark = pytest.mark.skipif(chromium() is None, reason="no Chromium here: `bash .ci/system-packages` installs it")
HYPERNAS = [str(BIN / "hypernas")] if (BIN / "hypernas").is_file() else [sys.executable, "-m", "search.cli"]


@pytest.fixture(scope="module")
def finished(ray_session, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("browsed")
    config = tiny_config("browsed", budget={"trials": 4, "max_concurrent": 2},
                         tracking={"uri": f"sqlite:///{workdir.resolve()}/mlflow.db"})
    result = run_experiment(config, workdir=workdir, stream=io.StringIO())
    return workdir, result


def _wait_until_serving(url: str, server: subprocess.Popen, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the MLflow UI did not answer at {url} (exit code {server.poll()})")
            time.sleep(0.5)


def test_the_mlflow_ui_opens_on_the_runs_table_with_the_parent_and_its_trials(finished, tmp_path):
    workdir, result = finished
    port = free_port()
    server = subprocess.Popen([*HYPERNAS, "ui", "browsed", "--workdir", str(workdir), "--port", str(port)],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    try:
        url = server.stdout.readline().split()[3]  # "MLflow UI on <url>  (store ...)"
        assert url.startswith(f"http://127.0.0.1:{port}/#/experiments/") and "workflowType=machine_learning" in url
        _wait_until_serving(f"http://127.0.0.1:{port}/", server)
        trials = read_trials(result.folder)
        names = [f"t{r['number']:02d} {r['state']} {r['last_value']:.4f}" for r in trials]

        async def steps(page):
            # the parent and its trials: the table's count, once it has loaded them all, and the table itself (on a
            # busy machine the count shows while the table still spins)
            expand = "document.querySelector('button[data-component-id*=\"runnamecellrenderer\"]')"
            await page.wait_for(f"/\\b{len(trials) + 1}\\s+matching runs/.test(document.body.innerText)"
                                f" && document.body.innerText.includes('browsed') && {expand} !== null")
            before = await page.text()
            columns = await page.evaluate("Array.from(document.querySelectorAll('[role=columnheader]'))"
                                          ".map(e => e.getAttribute('col-id'))")
            await page.screenshot("mlflow-ui-runs.png")
            # the parent's row holds its trials: expand it
            await page.evaluate(f"{expand}.click()")
            await page.wait_for(" && ".join(f"document.body.innerText.includes({json.dumps(n)})" for n in names))
            await page.screenshot("mlflow-ui-runs-expanded.png")
            return before, columns, await page.text()

        with headless_chromium(tmp_path / "profile") as devtools:
            before, columns, expanded = on_page(devtools, url, steps)
    finally:
        stop_group(server)
    assert any("Run Name" in (c or "") for c in columns), f"the runs table, not the GenAI overview: {columns}"
    assert all(name in expanded for name in names)
    assert (ARTIFACTS / "mlflow-ui-runs-expanded.png").read_bytes()[:4] == b"\x89PNG"


def test_the_report_renders_offline_with_its_pictures(finished, tmp_path):
    workdir, result = finished
    out = tmp_path / "report.html"
    done = subprocess.run([*HYPERNAS, "report", "browsed", "--workdir", str(workdir), "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    async def steps(page):
        await page.wait_for("document.readyState === 'complete' && document.images.length > 0")
        images = await page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete && i.naturalWidth > 0])")
        await page.send("Emulation.setDeviceMetricsOverride", width=1200, mobile=False, deviceScaleFactor=1,
                        height=int(await page.evaluate("document.documentElement.scrollHeight")))
        await page.screenshot("report.png")
        return images, await page.text()

    with headless_chromium(tmp_path / "profile") as devtools:
        images, text = on_page(devtools, out.resolve().as_uri(), steps, offline=True)
    assert len(images) >= 4 and all(loaded for _, loaded in images), images
    assert {"learning curves", "best so far", "parallel coordinates", "param importances"} <= {a for a, _ in images}
    assert f"Trials ({len(read_trials(result.folder))})" in text and "The test split is still sealed" in text
