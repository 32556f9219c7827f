"""The dashboard in a real headless chromium (DevTools protocol), on seeded SQLite data.

The page must load without console errors, draw every chart with the numbers the API
serves, render hostile strings from devices as text, and leave a screenshot in artifacts/.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from central.dashboard import DashboardServer, make_server
from central.seed import SeedSpec, seed_storage
from central.storage.base import Received, Storage, open_storage
from edge_agent.wire import SourceHealth, Status

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
SPEC = SeedSpec(stores=3, days=42)
HOSTILE = '<img src=x onerror="window.__pwned=1">'
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Storage]:
    path = tmp_path_factory.mktemp("dash") / "central.db"
    st = open_storage(f"sqlite://{path}")
    seed_storage(st, SPEC)
    # A device whose free-text status fields carry markup: it must show up as text.
    hostile = Status(
        store_id="store-001",
        device_id="edge-9",
        seq=1,
        created_at=SPEC.end - timedelta(minutes=1),
        state="online",
        version=HOSTILE,
        sources=[SourceHealth(id="cam-x", kind="camera", state="<b>stuck</b>")],
    )
    st.write_batch([Received(hostile, (SPEC.end - timedelta(minutes=1)).timestamp())])
    yield st
    st.close()


@pytest.fixture(scope="module")
def server(storage: Storage) -> Iterator[DashboardServer]:
    srv = make_server(storage, "127.0.0.1", 0, now=lambda: SPEC.end)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def get(
    srv: DashboardServer, path: str, host: str | None = None
) -> tuple[int, dict[str, str], Any]:
    addr, port = str(srv.server_address[0]), int(srv.server_address[1])
    conn = http.client.HTTPConnection(addr, port, timeout=30)
    headers = {"Host": host} if host else {}
    conn.request("GET", path, headers=headers)
    res = conn.getresponse()
    body = res.read()
    conn.close()
    ctype = res.getheader("Content-Type", "")
    doc = json.loads(body) if ctype.startswith("application/json") else body
    return res.status, dict(res.getheaders()), doc


def api(srv: DashboardServer, name: str, store: str, first: str, last: str) -> Any:
    status, _, doc = get(srv, f"/api/{name}?store={store}&from={first}&to={last}")
    assert status == 200, doc
    return doc


# ---------- HTTP API ------------------------------------------------------------------------


def test_api_errors_and_headers(server: DashboardServer) -> None:
    before = get(server, "/api/health")[2]  # the server is shared by the module's tests
    status, headers, doc = get(server, "/api/stores")
    assert status == 200
    assert [s["store_id"] for s in doc["stores"]] == ["store-001", "store-002", "store-003"]
    assert doc["default"] == {"store": "store-001", "from": "2026-11-09", "to": "2026-11-22"}
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    bad = {
        "/api/footfall?store=store-001&from=2026-11-10": 400,
        "/api/footfall?store=%3Cx%3E&from=2026-11-01&to=2026-11-02": 400,
        "/api/footfall?store=nope&from=2026-11-01&to=2026-11-02": 404,
        "/api/footfall?store=store-001&from=2026-11-05&to=2026-11-01": 400,
        # Days datetime arithmetic overflows on (a 500 and a traceback in the log before).
        "/api/footfall?store=store-001&from=9999-12-30&to=9999-12-31": 400,
        "/api/forecast?store=store-001&from=0001-01-01&to=0001-01-02": 400,
        "/api/nothing?store=store-001&from=2026-11-01&to=2026-11-02": 404,
        "/etc/passwd": 404,
    }
    for path, code in bad.items():
        status, _, doc = get(server, path)
        assert status == code, (path, doc)
        assert doc["error"]
    # DNS rebinding: a loopback server answers only to loopback host names.
    assert get(server, "/api/stores", host="evil.example:80")[0] == 421
    assert get(server, "/", host=f"localhost:{server.server_address[1]}")[0] == 200
    # Every refused request above is counted: the bad paths and the foreign Host header.
    status, _, after = get(server, "/api/health")
    assert status == 200 and after["ok"]
    assert after["client_errors"] - before["client_errors"] == len(bad) + 1
    assert after["server_errors"] == before["server_errors"]
    # + the first /api/health, /api/stores, the foreign Host, "/"
    assert after["requests"] - before["requests"] == len(bad) + 4


def test_api_uses_the_report_library(server: DashboardServer) -> None:
    args = ("store-001", "2026-11-09", "2026-11-22")
    ff = api(server, "footfall", *args)
    rep = api(server, "report", *args)
    conv = api(server, "conversion", *args)
    assert ff["visitors"] == rep["footfall"]["total_in"] > 0
    assert sum(d["in"] for d in ff["by_day"]) == ff["visitors"]
    assert conv["transactions"] == rep["conversion"]["transactions"] > 0
    assert (
        conv["transactions_without_footfall"] == rep["conversion"]["transactions_without_footfall"]
    )
    dwell = api(server, "dwell", *args)
    for z in dwell["zones"]:
        rz = rep["dwell"]["zones"][f"{z['camera_id']}/{z['zone_id']}"]
        assert (z["median_at_least"], z["p90_at_least"]) == (
            rz["median_at_least"],
            rz["p90_at_least"],
        )
    assert len(ff["by_hour_of_day"]) == 24
    q = api(server, "quality", *args)
    assert q == rep["data_quality"]
    fc = api(server, "forecast", *args)
    assert len(fc["forecast"]) == 168
    assert fc["backtest"] is not None
    assert fc["closures_excluded"] == ["2026-11-14"]  # the seeded holiday


# ---------- headless chromium over the DevTools protocol -------------------------------------


@dataclass
class Browser:
    proc: subprocess.Popen[bytes]
    ws: Any
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    events: list[dict[str, Any]] = field(default_factory=list)

    def call(self, method: str, timeout_s: float = 30.0, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout_s
        while True:
            raw = self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            msg = json.loads(raw)
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))
            if "method" in msg:
                self.events.append(msg)

    def eval(self, expr: str) -> Any:
        res = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expr}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def wait_for(self, expr: str, timeout_s: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.eval(expr)
            if value:
                return value
            if self.errors():
                break  # a page error will not fix itself: fail fast and say what it was
            time.sleep(0.1)
        raise TimeoutError(f"{expr}; page errors: {self.errors()}")

    def errors(self) -> list[str]:
        out = []
        for e in self.events:
            m, p = e["method"], e.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append(json.dumps(p["exceptionDetails"])[:500])
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(json.dumps(p.get("args"))[:500])
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(f"{p['entry'].get('source')}: {p['entry'].get('text')}")
        return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.fail("chromium not installed (apt-get install chromium chromium-driver)")
    from websockets.sync.client import connect

    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "--window-size=1440,1000",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chromium did not start (exit code {proc.poll()})")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as res:
            pages = [t for t in json.load(res) if t["type"] == "page"]
        ws = connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=30)
        b = Browser(proc, ws)
        for domain in ("Runtime", "Log", "Page"):
            b.call(f"{domain}.enable")
        yield b
        ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def open_page(b: Browser, url: str) -> None:
    b.call("Page.navigate", url="about:blank")  # a fresh document, even when only the #hash differs
    b.wait_for("document.readyState === 'complete' && location.href === 'about:blank'")
    b.events.clear()
    b.call("Page.navigate", url=url)
    b.wait_for("document.readyState === 'complete' && document.body.dataset.state === 'ready'")


def counts(b: Browser) -> dict[str, Any]:
    return dict(
        b.eval(
            """(() => {
          const q = (s) => document.querySelectorAll(s);
          const pts = (sel) => { const p = document.querySelector(sel); return p ? +p.dataset.points : -1; };
          const kpi = {};
          for (const v of q('.kpi .value')) kpi[v.dataset.kpi] = v.textContent;
          return {
            hourBars: q('#chart-hour rect.bar').length,
            dayBars: q('#chart-day rect.bar').length,
            dayValues: [...q('#chart-day rect.bar')].map((r) => +r.dataset.value),
            occupancyPoints: pts('#chart-occupancy path.series'),
            conversionPoints: pts('#chart-conversion path.series'),
            conversionBars: q('#chart-conversion g.bars rect').length,
            dwellBars: q('#chart-dwell rect.bar[data-value]').length,
            forecastPoints: pts('#chart-forecast path.forecast'),
            actualPoints: pts('#chart-forecast path.actual'),
            stockRows: q('#table-stock tbody tr').length,
            countRows: q('#table-counts tbody tr').length,
            transitionRows: q('#table-transitions tbody tr').length,
            stockText: document.querySelector('#table-stock').textContent,
            deviceRows: q('#table-devices tbody tr').length,
            deviceText: document.querySelector('#table-devices').textContent,
            findings: q('#list-quality li[data-kind]').length,
            injected: q('#table-devices img, #list-quality img, #list-quality b').length,
            pwned: window.__pwned === 1,
            note: document.querySelector('#forecast-note').textContent,
            kpi,
          };
        })()"""
        )
    )


def screenshot(b: Browser, path: Path) -> bytes:
    height = int(b.eval("document.documentElement.scrollHeight"))
    b.call(
        "Emulation.setDeviceMetricsOverride",
        width=1440,
        height=height,
        deviceScaleFactor=1,
        mobile=False,
    )
    time.sleep(0.3)  # the page re-draws its charts on resize (debounced 150 ms)
    b.wait_for("document.body.dataset.state === 'ready'")
    shot = b.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    data = base64.b64decode(shot["data"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


@pytest.mark.browser
def test_dashboard_renders_seeded_data(server: DashboardServer, browser: Browser) -> None:
    first, last = "2026-11-09", "2026-11-22"
    open_page(browser, server.url)
    c = counts(browser)
    assert browser.errors() == []
    ff = api(server, "footfall", "store-001", first, last)
    occ = api(server, "occupancy", "store-001", first, last)
    conv = api(server, "conversion", "store-001", first, last)
    dwell = api(server, "dwell", "store-001", first, last)
    stock = api(server, "stock", "store-001", first, last)
    devices = api(server, "devices", "store-001", first, last)
    quality = api(server, "quality", "store-001", first, last)
    fc = api(server, "forecast", "store-001", first, last)

    assert c["hourBars"] == 24
    assert c["dayBars"] == 14
    assert c["dayValues"] == [d["in"] for d in ff["by_day"]]
    assert c["occupancyPoints"] == len(occ["points"]) == 14 * 24
    # Closed days (Sundays in Berlin, the holiday) have no conversion: a gap, not a point.
    assert c["conversionPoints"] == sum(1 for d in conv["by_day"] if d["conversion_pct"]) == 11
    assert c["conversionBars"] == 14
    assert c["dwellBars"] == len(dwell["zones"]) == 4
    assert c["forecastPoints"] == len(fc["forecast"]) == 168
    assert c["actualPoints"] == sum(1 for p in fc["actual"] if p["v"] is not None) > 300
    assert c["note"] == fc["note"]
    assert c["kpi"]["Visitors"] == f"{ff['visitors']:,}"
    assert c["kpi"]["Transactions"] == f"{conv['transactions']:,}"
    assert c["kpi"]["Conversion"] == f"{conv['conversion_pct']:.1f} %"
    assert c["stockRows"] == len(stock["stockouts"]) >= 1
    assert "04012345100013" in c["stockText"]  # the seeded, closed stock-out
    assert c["countRows"] == len(stock["counts"]) == 3  # three products on the shelves
    assert c["transitionRows"] == min(6, len(dwell["transitions"])) > 0
    assert c["deviceRows"] == len(devices["devices"]) == 3
    assert c["findings"] == len(quality["findings"]) >= 2
    # Markup from a device is shown as text, never parsed.
    assert c["injected"] == 0
    assert not c["pwned"]
    assert HOSTILE in c["deviceText"]

    screenshot(browser, ARTIFACTS / "dashboard.png")
    assert browser.errors() == []


@pytest.mark.browser
def test_store_selector_and_offline_device(server: DashboardServer, browser: Browser) -> None:
    open_page(browser, server.url + "#store=store-003&from=2026-11-16&to=2026-11-22")
    c = counts(browser)
    assert browser.errors() == []
    ff = api(server, "footfall", "store-003", "2026-11-16", "2026-11-22")
    assert c["dayBars"] == 7
    assert c["kpi"]["Visitors"] == f"{ff['visitors']:,}"
    assert c["kpi"]["Devices online"] == "1 / 2"  # edge-1 went offline
    assert "offline" in c["deviceText"]
    # Picking another store in the selector reloads every chart.
    browser.eval(
        "(() => { const s = document.getElementById('store'); s.value = 'store-002';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    browser.wait_for(
        "location.hash.includes('store-002') && document.body.dataset.state === 'ready'"
    )
    c2 = counts(browser)
    ff2 = api(server, "footfall", "store-002", "2026-11-16", "2026-11-22")
    assert c2["kpi"]["Visitors"] == f"{ff2['visitors']:,}"
    assert c2["dayValues"] == [d["in"] for d in ff2["by_day"]]
    screenshot(browser, ARTIFACTS / "dashboard-store-002.png")
    assert browser.errors() == []


def test_empty_database(tmp_path: Path) -> None:
    with open_storage(f"sqlite://{tmp_path / 'empty.db'}") as st:
        srv = make_server(st, "127.0.0.1", 0)
        thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1})
        thread.start()
        try:
            status, _, doc = get(srv, "/api/stores")
            assert status == 200
            assert doc["stores"] == []
            assert doc["default"] is None
            status, _, body = get(srv, "/app.js")
            assert status == 200
            assert b"textContent" in body
        finally:
            srv.shutdown()
            srv.server_close()
            thread.join()
