"""Dashboard smoke check: a local ZenML server, a tiny pipeline run, headless Chromium.

1. starts `zenml login --local` on a free port in a throwaway ZenML config;
2. runs the real pipeline (run.py) against it on a tiny random Llama and a ViGGO subset;
3. checks `/health` and the run's status through the REST API;
4. renders the run page in headless Chromium (driven by chromedriver, since the DAG is laid
   out in a web worker that needs real time), saves a screenshot and checks that every step
   name of the DAG is in the page's text;
5. stops the server by its PID.

    python scripts/dashboard_smoke.py [--data-dir DIR (default: data/viggo)] [--screenshot out.png]

Exits non-zero with one line saying which check failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("prepare_data", "finetune", "evaluate_base", "evaluate_finetuned", "promote")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--window-size=1600,1000",
]


class SmokeError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def wait_for(url: str, seconds: float) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=3) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise SmokeError(f"{url} did not answer within {seconds:.0f} s")


def _put(url: str, payload: dict) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        if r.status != 200:
            raise SmokeError(f"PUT {url}: HTTP {r.status}")


def skip_onboarding(base: str) -> None:
    """Mark the default user as onboarded: a fresh server's dashboard shows a survey instead
    of the page asked for (it checks email_opted_in and user_metadata)."""
    user = get_json(f"{base}/api/v1/current-user")["id"]
    survey = {"finished_onboarding_survey": True, "awareness_channels": ["other"]}
    _put(f"{base}/api/v1/users/{user}", {"user_metadata": survey})
    # The general user update ignores email_opted_in; it has its own endpoint.
    _put(f"{base}/api/v1/users/{user}/email-opt-in", {"email_opted_in": False})


def server_pid(port: int) -> int:
    import psutil

    for conn in psutil.net_connections(kind="tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == "LISTEN" and conn.pid:
            return conn.pid
    raise SmokeError(f"no process listens on port {port}")


def make_tiny_model(out: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    from tests.fixtures.tiny_model import build_tiny_llama
    from utils.modeling.resolve import resolve_model_path

    return build_tiny_llama(resolve_model_path("HuggingFaceTB/SmolLM2-135M-Instruct"), out)


def make_subset(data_dir: Path, out: Path) -> Path:
    """The first rows of each split of `data_dir` (any layout the loader reads), as JSONL."""
    sys.path.insert(0, str(ROOT))
    from utils.data.sources import load_local_splits

    out.mkdir(parents=True)
    splits = load_local_splits(data_dir)
    for split, n in (("train", 24), ("validation", 4), ("test", 6)):
        rows = splits[split][:n]
        (out / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def run_pipeline(work: Path, data_dir: Path, env: dict) -> None:
    config = {
        "model": {
            "name": "dashboard-smoke",
            "base_model_id": str(make_tiny_model(work / "m")),
            "dtype": "float32",
        },
        "lora": {"r": 2, "alpha": 4},
        "dataset": {"data_dir": str(make_subset(data_dir, work / "data"))},
        "training": {"max_steps": 1, "batch_size": 4, "logging_steps": 1},
        "evaluation": {"max_samples": 4, "batch_size": 4, "max_new_tokens": 4},
    }
    path = work / "smoke.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "--config", str(path)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise SmokeError(f"pipeline run failed: {proc.stderr.strip().splitlines()[-1:]}")


def render(url: str, screenshot: Path, chromium: str, wait_s: float = 90) -> str:
    """The run page's visible text once every step name shows (the DAG is laid out in a web
    worker, which headless Chromium's virtual time does not advance: wait in real time)."""
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(
        service=Service(shutil.which("chromedriver") or "chromedriver"), options=options
    )
    try:
        driver.get(url)
        # On timeout, report what is there: main() names the missing steps.
        with contextlib.suppress(TimeoutException):
            WebDriverWait(driver, wait_s, poll_frequency=1).until(
                lambda d: all(s in d.find_element("tag name", "body").text for s in STEPS)
            )
        time.sleep(2)  # let the layout settle before the picture
        driver.save_screenshot(str(screenshot))
        return driver.find_element("tag name", "body").text
    finally:
        driver.quit()


def zenml_cli() -> str:
    """The `zenml` script of this interpreter's environment: CI calls `.venv/bin/python`
    without putting `.venv/bin` on PATH, and another `zenml` there may be another install."""
    beside = Path(sys.executable).parent / "zenml"
    if beside.is_file():
        return str(beside)
    found = shutil.which("zenml")
    if found is None:
        raise SmokeError(f"no zenml script beside {sys.executable} or on PATH")
    return found


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", type=Path, default=ROOT / "data" / "viggo")
    p.add_argument("--screenshot", type=Path, default=Path(tempfile.gettempdir()) / "run.png")
    p.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dashboard-smoke-"))
    port = free_port()
    env = dict(
        os.environ,
        ZENML_CONFIG_PATH=str(work / "zenml"),
        ZENML_ANALYTICS_OPT_IN="false",
        ZENML_AUTO_OPEN_DASHBOARD="false",
        HF_HUB_OFFLINE="1",
    )
    base = f"http://127.0.0.1:{port}"
    pid = None
    try:
        subprocess.run(
            [zenml_cli(), "login", "--local", "--port", str(port)],
            env=env,
            cwd=work,
            capture_output=True,
            timeout=180,
            check=True,
        )
        wait_for(f"{base}/health", 60)
        pid = server_pid(port)
        print(f"server up on {base} (pid {pid}); /health ok")
        skip_onboarding(base)
        run_pipeline(work, args.data_dir, env)
        runs = get_json(f"{base}/api/v1/runs?sort_by=desc:created&size=1")["items"]
        if not runs:
            raise SmokeError("the REST API lists no pipeline run")
        run = runs[0]
        status = run["body"]["status"]
        if status != "completed":
            raise SmokeError(f"run {run['id']} has status {status!r}")
        # A fresh server has one project, "default"; the dashboard routes by project name.
        url = f"{base}/projects/default/runs/{run['id']}"
        print(f"run {run['id']} completed; rendering {url}")
        text = render(url, args.screenshot, args.chromium)
        missing = [s for s in STEPS if s not in text]
        if missing:
            raise SmokeError(f"run page lacks step(s) {missing}; screenshot {args.screenshot}")
        if not args.screenshot.is_file() or args.screenshot.stat().st_size < 10_000:
            raise SmokeError(f"no usable screenshot at {args.screenshot}")
        print(
            f"dashboard smoke passed: all {len(STEPS)} steps on the run page; "
            f"screenshot {args.screenshot}"
        )
        return 0
    except (SmokeError, subprocess.SubprocessError, OSError) as e:
        print(f"dashboard smoke FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
