"""Issue 24 item 10: `hermes-watchdog skill install` puts a skill where the real Hermes 0.19.0 finds it: its own
skill scanner (agent.skill_commands.scan_skill_commands, run in the real release's venv) offers it as
/hermes-watchdog with our description; the commands it tells the agent to run are read-only and work."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.helpers import assert_one_line_error, cli
from tests.realhermes.venvs import hermes_venv

SCAN = ("import json; from agent.skill_commands import scan_skill_commands; "
        "print(json.dumps(scan_skill_commands()))")


def test_the_skill_is_found_by_the_real_0_19_scanner_and_uninstalled_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "hermes"
    home.mkdir()
    r = cli("skill", "install", "--hermes-home", str(home))
    assert r.code == 0, r.err
    skill = home / "skills" / "hermes-watchdog" / "SKILL.md"
    assert skill.stat().st_mode & 0o777 == 0o600 and (skill.parent.stat().st_mode & 0o777) == 0o700
    text = skill.read_text()
    assert f"hermes-watchdog status --json --hermes-home {home}" in text
    for forbidden in ("hermes-watchdog run", "hermes-watchdog install", "kill "):
        assert f"    {forbidden}" not in text  # only read-only commands are given to run
    python = hermes_venv("0.19.0")  # the release venv's interpreter
    env = {**os.environ, "HERMES_HOME": str(home), "HOME": str(tmp_path)}
    out = subprocess.run([str(python), "-c", SCAN], capture_output=True, text=True, env=env,
                         timeout=120, check=True, cwd=tmp_path).stdout
    found = json.loads(out.strip().splitlines()[-1])
    assert "/hermes-watchdog" in found, found
    assert found["/hermes-watchdog"]["description"].startswith('Answer "are you healthy?"')
    # What it tells the agent to run answers, even with no watchdog running (JSON and a reason).
    status = cli("status", "--json", "--hermes-home", str(home))
    assert json.loads(status.out)["gateways"] == []
    assert cli("skill", "uninstall", "--hermes-home", str(home)).code == 0 and not skill.parent.exists()
    assert cli("skill", "uninstall", "--hermes-home", str(home)).code == 0  # twice: nothing to do
    assert_one_line_error(cli("skill", "frobnicate", "--hermes-home", str(home)))
    assert_one_line_error(cli("skill", "install", "--hermes-home", str(tmp_path / "missing")))
