"""Issue 23: under CI=true a skip that hides a capability fails the run; pip failures are classified
honestly. Plain data, no processes."""

from __future__ import annotations

from tests import pipfail
from tests.capabilities import CAPABILITIES, capabilities_of, ci_failure, ci_strict


def test_ci_strict_only_when_ci_says_true() -> None:
    assert ci_strict({"CI": "true"}) and ci_strict({"CI": "1"}) and ci_strict({"CI": " TRUE "})
    assert not ci_strict({}) and not ci_strict({"CI": "false"}) and not ci_strict({"CI": ""})


def test_a_capability_test_is_known_by_file_fixture_or_marker() -> None:
    assert capabilities_of("test_real_s6.py", [], []) == {"s6"}
    assert capabilities_of("test_promtool.py", [], []) == {"promtool"}
    assert capabilities_of("test_install.py", ["tmp_path", "systemd_user", "user_site"], []) == {
        "systemd", "user-install"}
    assert capabilities_of("test_install.py", ["tmp_path"], ["systemd"]) == {"systemd"}
    assert capabilities_of("test_real_gateway.py", [], []) == {"real-hermes"}
    assert capabilities_of("test_run.py", ["tmp_path", "daemons"], []) == set()


def test_a_capability_skip_fails_naming_what_is_missing_and_why() -> None:
    failure = ci_failure({"s6"}, [], "Skipped: s6 is not installed (apt-get install s6)")
    assert failure is not None and failure.startswith("CI=true:") and CAPABILITIES["s6"] in failure
    assert failure.endswith("The skip said: Skipped: s6 is not installed (apt-get install s6)")
    # Raised inside hermes_venv, from any test file: the real Hermes releases are what is missing.
    frames = ["/r/tests/test_stacks_without_root.py", "/r/tests/realhermes/venvs.py", "/v/_pytest/outcomes.py"]
    assert "real-hermes" in (ci_failure(set(), frames, "Skipped: cannot reach the package registry") or "")
    assert "user-install" in (ci_failure(set(), ["/r/tests/usermode.py"], "Skipped: not root") or "")


def test_a_skip_that_hides_no_capability_stays_a_skip() -> None:
    assert ci_failure(set(), ["/r/tests/test_stacks_without_root.py"], "Skipped: git is not installed") is None
    assert ci_failure(set(), [], "Skipped: schedstat demand is Linux-only") is None


def test_only_a_proven_network_failure_is_a_network_failure() -> None:
    requires_python = ("ERROR: Ignored the following versions that require a different python version: 0.20.0 "
                       "Requires-Python >=3.12\nERROR: Could not find a version that satisfies the requirement "
                       "hermes-agent==0.20.0 (from versions: 0.13.0, 0.19.0)\nERROR: No matching distribution "
                       "found for hermes-agent==0.20.0\n")
    assert not pipfail.network_failure(requires_python)
    said = pipfail.explain("pip install hermes-agent==0.20.0", requires_python)
    assert "outside the release's Requires-Python" in said and said.endswith("found for hermes-agent==0.20.0")
    unreachable = ("WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after "
                   "connection broken by 'NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection "
                   "object>: Failed to establish a new connection: [Errno -3] Temporary failure in name "
                   "resolution')': /simple/hermes-agent/\nERROR: Could not find a version that satisfies the "
                   "requirement hermes-agent==0.14.0 (from versions: none)\nERROR: No matching distribution found "
                   "for hermes-agent==0.14.0\n")
    assert pipfail.network_failure(unreachable)
    assert not pipfail.network_failure("ERROR: Could not build wheels for psutil\n")
    assert pipfail.last_lines("") == "(pip said nothing on stderr)"
