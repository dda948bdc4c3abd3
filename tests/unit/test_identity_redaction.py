"""Issue 24 item 7: evidence called redacted keeps no username, no home folder and no install path: planted
in a record, a stack and a log tail, then every file of the evidence folder is read back."""

from __future__ import annotations

from pathlib import Path

from hermes_watchdog.record import evidence
from hermes_watchdog.record.redact import USER_MASK, redact_identity

NAME = "hermesalice"
HOME = f"/home/{NAME}"
SITE = "/srv/bots/acme-prod/venv/lib/python3.11/site-packages"


def test_evidence_files_keep_no_username_home_or_install_path(tmp_path: Path) -> None:
    rec = {
        "pid": 4242,
        "process": {"cmdline": [f"{HOME}/hermes-agent/venv/bin/python3", "-m", "hermes_cli.main", "gateway", "run"],
                    "exe": "/srv/bots/acme-prod/venv/bin/python3.11", "username": NAME},
        "hermes_home": {"path": f"{HOME}/.hermes"},
        "verdict": {"signature": "busy-loop", "confidence": 0.9,
                    "reasons": [f"gateway of {NAME} spins in {SITE}/gateway/platforms/qqbot/adapter.py"]},
        "versions": {"hermes": f"0.19.0 ({SITE})"},
    }
    stack = f'Thread 1 (most recent call first):\n  File "{SITE}/gateway/run.py", line 3 in main\n'
    logs = f"2026-12-01 INFO loaded {HOME}/.hermes/config.yaml for {NAME}\n"
    folder = tmp_path / "evidence"
    folder.mkdir()
    evidence.write(folder, rec, stack, logs, record_name="diagnosis.json", title="t",
                   raw_state={"writer": f"{HOME}/x"})
    written = {p.name: p.read_text() for p in folder.iterdir()}
    assert set(written) >= {"diagnosis.json", "report.md", "stack.txt", "logs-tail.txt", "state.json"}
    for name, text in written.items():
        assert NAME not in text and HOME not in text and "/srv/bots" not in text, (name, text)
    assert '"username": "<user>"' in written["diagnosis.json"]
    assert "…/site-packages/gateway/run.py" in written["stack.txt"]  # where in the package stays readable
    assert f"~{USER_MASK}/.hermes/config.yaml" in written["logs-tail.txt"]


def test_short_names_and_ordinary_words_are_left_alone() -> None:
    assert redact_identity("a user named bo ran it", ("bo",)) == "a user named bo ran it"
    assert redact_identity("rootless and root", ("root",)) == f"rootless and {USER_MASK}"
    assert redact_identity({"username": "", "n": 3}) == {"username": "", "n": 3}
