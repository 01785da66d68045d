"""The web console (server/console.py), in a real browser: headless Chromium from Debian's package,
driven by Playwright, against a real 2-rank server with --console-port 0 and a user and password,
after real queries through ADBC. Without Chromium or Playwright the tests fail, saying how to get
them (.ci/run installs Chromium)."""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.server_fixtures import REPO, SLOW_SQL, copy_data, start_server, stop_server

USER, PASSWORD = "console-user", "console-secret"
SHUFFLING = "SELECT l_comment, count(*) AS n FROM lineitem GROUP BY l_comment ORDER BY n DESC, l_comment LIMIT 3"
BROWSER_TIMEOUT_MS = 30_000
# FLOCKSQL_CONSOLE_SCREENSHOTS=docs/console saves the pages the test visits there (README's pictures).
SCREENSHOTS = os.environ.get("FLOCKSQL_CONSOLE_SCREENSHOTS")
PEAK = r"[\d.]+ (KiB|MiB|GiB)"


def screenshot(page, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=os.path.join(SCREENSHOTS, name), full_page=True)


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("headless Chromium is needed for the console tests and is not installed: "
                    "apt-get update && apt-get install -y chromium (Debian; .ci/run does it)")
    return path


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the console tests drive Chromium with Playwright: pip install -e '.[test]'")
    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        chromium = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server-console")
    reports = tmp / "bench-results"
    reports.mkdir()
    proc = start_server("engine", copy_data(tmp / "data"), tmp / "server.log", ranks=2,
                        args=["--console-port", "0", "--user", USER, "--password", PASSWORD,
                              "--console-reports", str(reports)])
    proc.reports = reports
    proc.db_kwargs = {"username": USER, "password": PASSWORD}
    deadline = time.monotonic() + 30
    while not (match := re.search(r"Web console on (http://\S+)", proc.log())) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert match, proc.log()
    proc.console = match.group(1)
    yield proc
    stop_server(proc)


@pytest.fixture
def page(browser, server):
    context = browser.new_context(http_credentials={"username": USER, "password": PASSWORD},
                                  viewport={"width": 1400, "height": 900})
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the console's pages: {errors}"


def http(url: str, method: str = "GET", auth: tuple[str, str] | None = (USER, PASSWORD),
         headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def exactly(text: str) -> re.Pattern:
    return re.compile("^" + re.escape(text) + "$")


def patterns(node: dict) -> set[str]:
    found = {node["pattern"]} if node.get("pattern") else set()
    for child in node["children"]:
        found |= patterns(child)
    return found


@pytest.mark.timeout(180)
def test_queries_and_plan_in_the_browser(server, page):
    assert server.console.startswith("http://127.0.0.1:"), server.console  # loopback unless --console-host
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute(SHUFFLING)
        assert len(cur.fetchall()) == 3
        cur.execute("EXPLAIN (FORMAT JSON) " + SHUFFLING)
        expected = patterns(json.loads(cur.fetchone()[0])["plan"])
    assert "combine-shuffle-reduce" in expected or "shuffle-compute" in expected, expected

    page.goto(server.console)
    row = page.locator("#recent tbody tr", has=page.locator("td.sql code", has_text=exactly(SHUFFLING))).first
    row.wait_for()
    assert row.locator("td.sql code").inner_text() == SHUFFLING
    assert row.locator(".state").inner_text() == "finished"
    assert row.locator("td").nth(2).inner_text() == USER
    assert row.locator("td").nth(6).inner_text() == "3"  # rows
    qid = int(row.get_attribute("data-id"))
    # Peak memory: the busiest rank's, with each rank's in the cell's title, as the query log has
    # them. A streamed result (ADBC's) brings back every rank's statistics at the stream's end.
    status, logged = http(f"{server.console}api/queries/{qid}")
    assert status == 200 and len(logged["peak_memory_bytes"]) == 2, logged
    assert min(logged["peak_memory_bytes"]) > 10 << 20, logged
    peak = row.locator("td.peak")
    assert re.fullmatch(PEAK, peak.inner_text()), peak.inner_text()
    assert re.fullmatch(rf"rank 0 {PEAK} · rank 1 {PEAK}", peak.get_attribute("title")), peak.get_attribute("title")
    screenshot(page, "queries.png")
    # The header line comes from a fetch of its own: wait for it rather than read it at once.
    page.locator("#flock-summary", has_text="2 ranks").wait_for()

    # The plan page: the planner's patterns and exchanges, then EXPLAIN ANALYZE's bars per rank.
    row.locator("a", has_text="plan").click()
    page.wait_for_url(f"**/query.html?id={qid}")
    # The page fills the query's facts, then fetches its plan: once a plan node shows, both are in.
    page.locator("#plan .node").first.wait_for()
    assert page.locator("#sql").inner_text().strip() == SHUFFLING
    facts = page.locator("#facts").inner_text()
    assert re.search(rf"peak memory per rank\s+rank 0 {PEAK} · rank 1 {PEAK}", facts), facts
    page.locator("#plan .node").first.wait_for()
    shown = set(page.locator("#plan .pattern").all_inner_texts())
    assert shown == expected
    assert "shuffle" in page.locator("#plan .node.exchange .kind").all_inner_texts()
    assert page.locator("#timing").is_hidden()
    page.locator("#analyze").click()
    page.locator("#bars svg.bars").wait_for()
    chart = page.locator("#bars").inner_text()
    assert re.search(r"Exchange #\d+ shuffle — under \S+ \((combine-shuffle-reduce|shuffle-compute)\)", chart), chart
    assert "rank 0" in chart and "rank 1" in chart
    assert page.locator("#bars rect.bar.compute").count() >= 2
    assert page.locator("#bars rect.bar.comm").count() >= 2
    assert page.locator("#bars rect.bar.wait").count() >= 2
    rows = page.locator("#bars text.bar-text").all_text_contents()
    assert any(re.fullmatch(r"compute \S+ \S+ · comm \S+ \S+ · wait \S+ \S+ · \d+ rows · sent .+", r) for r in rows), rows
    actual = page.locator("#plan .node.exchange .actual").all_inner_texts()
    assert any(text.startswith("actual rows ") for text in actual), actual
    # Where a fragment ends, its operator shows the rows it produced next to the estimate: the scan
    # under the shuffle read every row of lineitem.
    fragment_ends = page.locator("#plan .node.op .actual").all_inner_texts()
    assert any(re.fullmatch(r"actual rows 60,175 \(est\. [\d,]+\)", text) for text in fragment_ends), fragment_ends
    # Operators inside fragments show DuckDB's counts too, summed over ranks, with the spread.
    spreads = page.locator("#plan .node.op .small").all_inner_texts()
    assert sum(bool(re.fullmatch(r"rows per rank [\d,]+ / [\d,]+ / [\d,]+ \(min/median/max\)", t))
               for t in spreads) >= 3, spreads
    # The timeline: one bar per rank, its stages end to end, each split into compute, waiting and
    # communication (named in each piece's tooltip), then totals and the rank's peak memory.
    timeline = page.locator("#timeline svg.timeline")
    assert timeline.locator("text.bar-label").all_text_contents() == ["rank 0", "rank 1"]
    for text in timeline.locator("text.bar-text").all_text_contents():
        assert re.fullmatch(rf"compute \S+ \S+ · comm \S+ \S+ · wait \S+ \S+ · peak memory {PEAK}", text), text
    tips = timeline.locator("rect.bar title").all_text_contents()
    shuffle_id = re.search(r"Exchange #(\d+) shuffle", chart)[1]
    for part in ("compute", "waiting", "communication"):
        assert sum(tip.startswith(f"Exchange #{shuffle_id} shuffle: {part}: ") for tip in tips) == 2, tips
    assert sum(tip.startswith("final fragment: waiting: ") for tip in tips) == 2, tips
    screenshot(page, "query-plan.png")
    # The console's ANALYZE ran as a query of its own, listed with the others.
    page.goto(server.console)
    analyzed = page.locator("#recent tbody tr", has=page.locator(
        "td.sql code", has_text="EXPLAIN (ANALYZE, FORMAT JSON) " + SHUFFLING)).first
    analyzed.wait_for()
    # Collected, not streamed: every rank's peak came back.
    title = analyzed.locator("td.peak").get_attribute("title")
    assert re.fullmatch(rf"rank 0 {PEAK} · rank 1 {PEAK}", title), title

    page.goto(server.console + "flock.html")
    page.locator("#memory svg").wait_for()
    facts = page.locator("#facts").inner_text()
    assert re.search(r"ranks\s+2\b", facts), facts
    host = socket.gethostname()  # both ranks run here
    assert re.search(rf"hosts\s+{re.escape(host)} \(ranks 0, 1\)", facts), facts
    assert re.search(r"restarts by the supervisor\s+0\b", facts), facts


@pytest.mark.timeout(180)
def test_cancel_a_running_query_from_the_browser(server, page):
    outcome = {}

    def client():
        try:
            with server.connect() as conn, conn.cursor() as cur:
                cur.execute(SLOW_SQL)
                outcome["rows"] = cur.fetchall()
        except Exception as exc:  # noqa: BLE001 - the cancel's error is what we expect
            outcome["error"] = str(exc)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        page.goto(server.console)
        row = page.locator("#running tbody tr", has=page.locator("td.sql code", has_text="CROSS JOIN nation c"))
        row.locator("button.cancel").click()
        thread.join(120)
        assert not thread.is_alive(), "the cancelled query's client hung"
        assert "rows" not in outcome and "cancelled from the web console" in outcome["error"], outcome
        done = page.locator("#recent tbody tr", has=page.locator("td.sql code", has_text="CROSS JOIN nation c"))
        done.locator(".state", has_text="cancelled").wait_for()
    finally:
        thread.join(120)


@pytest.mark.timeout(300)
def test_bench_reports_and_their_charts_in_the_browser(server, page, tpch_sf001):
    # A real `flocksql tpch bench` writes its report into the folder the console shows.
    bench = subprocess.run(
        [sys.executable, "-m", "cli", "tpch", "bench", "--data", str(tpch_sf001), "--queries", "1,6",
         "--ranks", "1,2", "--repeat", "1", "--out", str(server.reports)],
        capture_output=True, text=True, timeout=240, cwd=REPO)
    assert bench.returncode == 0, bench.stderr
    charts = sorted(p.name for p in server.reports.glob("results_*.png"))
    assert charts, ("tpch bench drew no charts (matplotlib is in the test extra)", bench.stderr)
    page.goto(server.console + "reports.html")
    section = page.locator('section.report[data-report="results"]')
    section.wait_for()
    # The report's own table: a row per query with each engine's time, and the totals.
    table = section.locator("table.report-table").first
    header = table.locator("thead th").all_inner_texts()
    assert {"duckdb", "flocksql@1", "flocksql@2"} <= {h.split()[0] for h in header}, header
    firsts = table.locator("tbody tr td:first-child").all_inner_texts()
    assert {"Q1", "Q6"} <= set(firsts), firsts
    # Each chart is an image the browser loaded (decoded, with a size), served from the folder.
    images = section.locator("img.chart")
    assert sorted(images.evaluate_all("imgs => imgs.map(i => i.alt)")) == charts
    assert images.evaluate_all("imgs => imgs.every(i => i.complete && i.naturalWidth > 0)")
    screenshot(page, "reports.png")
    # Only the folder's charts are served; nothing else of the file system.
    assert http(server.console + "reports/..%2Fserver.log")[0] == 404
    assert http(server.console + "reports/results.json")[0] == 404


def test_console_requires_the_servers_user_and_password(server):
    status, doc = http(server.console + "api/queries", auth=None)
    assert status == 401 and "required" in doc["error"]
    assert http(server.console + "api/queries", auth=(USER, "wrong"))[0] == 401
    assert http(server.console + "api/flock")[0] == 200
    # A POST without the console's header (a form of another site) is refused; an unknown query is 404.
    assert http(server.console + "api/queries/1/cancel", method="POST")[0] == 403
    assert http(server.console + "api/queries/999999/cancel", method="POST",
                headers={"X-FlockSQL-Console": "1"})[0] == 404
    # A Host that is not loopback (DNS rebinding) is refused on a loopback console.
    assert http(server.console + "api/flock", headers={"Host": "evil.example:80"})[0] == 403


def test_non_loopback_console_needs_a_user_and_password(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--data", str(tmp_path), "--console-port", "0",
         "--console-host", "0.0.0.0"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "refusing to serve the console on 0.0.0.0 without --user and --password" in result.stderr
