"""Prometheus, checked by Prometheus: `promtool check metrics` on a real scrape of the daemon's /metrics,
and `promtool test rules` on the README's alert rules (kept in prometheus/hermes-watchdog.rules.yml, which
the README shows verbatim). Debian's `prometheus` package provides promtool (.ci/run installs it)."""

from __future__ import annotations

import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "prometheus" / "hermes-watchdog.rules.yml"
RULES_TEST = ROOT / "tests" / "promtool" / "rules_test.yml"

needs_promtool = pytest.mark.skipif(not shutil.which("promtool"),
                                    reason="promtool is not installed (apt-get install prometheus)")


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], input=stdin, capture_output=True, text=True, timeout=60, check=False)


def test_readme_shows_the_rules_file_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    assert RULES.read_text() in blocks


@needs_promtool
def test_alert_rules_pass_promtool_and_their_unit_tests(tmp_path: Path) -> None:
    r = promtool("check", "rules", str(RULES))
    assert r.returncode == 0, r.stdout + r.stderr
    r = promtool("test", "rules", str(RULES_TEST))
    assert r.returncode == 0, r.stdout + r.stderr
    # The unit tests can fail: the same tests against a rule that waits 10 minutes instead of 2.
    (tmp_path / "prometheus").mkdir()
    (tmp_path / "prometheus" / RULES.name).write_text(RULES.read_text().replace("for: 2m", "for: 10m"))
    (tmp_path / "tests" / "promtool").mkdir(parents=True)
    shutil.copy(RULES_TEST, tmp_path / "tests" / "promtool" / RULES_TEST.name)
    r = promtool("test", "rules", str(tmp_path / "tests" / "promtool" / RULES_TEST.name))
    assert r.returncode != 0 and "HermesGatewayBusyLoop" in r.stdout + r.stderr


@needs_promtool
def test_a_real_scrape_passes_promtool_check_metrics(tmp_path: Path, sim, daemons) -> None:
    home = tmp_path / "hermes"
    sim("spin", "--spin-after", "0.5", home=home).wait_running().wait_spinning()
    d = daemons(tmp_path / "state", "--hermes-home", str(home), "--interval", "0.5", "--window", "2", "--dry-run",
                "--metrics-port", "0")
    d.wait_event("DRY-RUN")
    url = wait_for(lambda: (d.status().get("daemon") or {}).get("metrics_url"), what="the metrics URL")

    def scraped() -> str | None:
        with urllib.request.urlopen(url, timeout=10) as resp:
            text = resp.read().decode()
        # The incident is logged mid-tick and published at the end of it: every family filled in.
        return text if re.search(r'^hermes_watchdog_incidents_total\{.*\} 1\.0$', text, re.M) else None

    text = wait_for(scraped, what="the incident in the metrics")
    r = promtool("check", "metrics", stdin=text)
    assert r.returncode == 0, r.stdout + r.stderr
    # The check can fail: a counter without its _total suffix is one of the things it rejects.
    bad = text.replace("hermes_watchdog_incidents_total", "hermes_watchdog_incidents")
    assert promtool("check", "metrics", stdin=bad).returncode != 0
