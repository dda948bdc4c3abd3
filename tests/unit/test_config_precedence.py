"""Config precedence: defaults < the TOML file < flags; a flat file or a [watchdog] table. Files only."""

from __future__ import annotations

from pathlib import Path

import pytest

from hermes_watchdog import config
from hermes_watchdog.errors import UserError


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERMES_HOME", str(tmp_path / "nohome"))
    cfg = config.build(None, {})
    assert (cfg.interval, cfg.window, cfg.grace, cfg.max_restarts) == (5.0, 60.0, 20.0, 3)


def test_file_over_defaults_and_flags_over_file(tmp_path: Path) -> None:
    f = tmp_path / "w.toml"
    f.write_text("interval = 2\nwindow = 30\nmax_restarts = 5\n")
    cfg = config.build(f, {"window": 40.0, "interval": None})
    assert cfg.window == 40.0  # the flag wins
    assert cfg.interval == 2.0  # an unset flag (None) leaves the file's value
    assert cfg.max_restarts == 5 and cfg.grace == 20.0  # file, then default


def test_a_watchdog_table_is_read_like_a_flat_file(tmp_path: Path) -> None:
    f = tmp_path / "w.toml"
    f.write_text("[watchdog]\ninterval = 3\nrestart-window = 600\n")
    cfg = config.build(f, {})
    assert cfg.interval == 3.0 and cfg.restart_window == 600.0  # dashes read as underscores


def test_the_default_file_in_hermes_home_is_read_when_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "h"
    home.mkdir()
    (home / "watchdog.toml").write_text("window = 90\n")
    monkeypatch.setenv("HERMES_HOME", str(home))
    assert config.build(None, {}).window == 90.0
    assert config.build(None, {"window": 45.0}).window == 45.0


def test_unknown_key_in_a_table_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "w.toml"
    f.write_text("[watchdog]\nintervall = 3\n")
    with pytest.raises(UserError, match="unknown key 'intervall'"):
        config.build(f, {})
