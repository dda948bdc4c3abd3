"""Issue 20 item 1: root inside a user's home is never steered by the user's links. Each test plants a link
owned by another user (``nobody``), as the home's owner would, on the way to a file root reads or writes.
Root is needed to own files as another user; the suite runs as root in CI."""

from __future__ import annotations

import errno
import os
import pwd
import threading
from pathlib import Path

import pytest

from hermes_watchdog import safepath
from hermes_watchdog.daemon import locks
from hermes_watchdog.observe import looptick, statefile
from hermes_watchdog.record import private
from hermes_watchdog.sim.loop_modes import bound_unix_socket

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="owning a link as another user needs root")


def _user_link(link: Path, target: Path) -> None:
    """A symlink as the home's user (nobody) would plant it."""
    link.symlink_to(target)
    nobody = pwd.getpwnam("nobody")
    os.lchown(link, nobody.pw_uid, nobody.pw_gid)


def _refused(exc: pytest.ExceptionInfo[OSError]) -> bool:
    return exc.value.errno == errno.ELOOP and "uid" in str(exc.value)


def test_a_users_link_on_the_way_never_redirects_reads_or_writes(tmp_path: Path) -> None:
    secret_dir = tmp_path / "root-only"
    secret_dir.mkdir(mode=0o700)
    (secret_dir / "gateway_state.json").write_text('{"secret": 1}')
    (secret_dir / "victim").write_text("root's data")
    home = tmp_path / "uhome"
    home.mkdir()
    _user_link(home / "logs", secret_dir)  # the parent swapped for a link: O_NOFOLLOW alone misses it
    with pytest.raises(OSError) as exc:
        statefile.open_regular(home / "logs" / "gateway_state.json")
    assert _refused(exc)
    raw, error = statefile.read_bytes(home / "logs" / "gateway_state.json")
    assert raw is None and error is not None
    with pytest.raises(OSError) as exc:
        private.write_text(home / "logs" / "victim", "overwritten")
    assert _refused(exc)
    with pytest.raises(OSError) as exc:
        private.make_dir(home / "logs" / "watchdog")
    assert _refused(exc)
    with pytest.raises(locks.LockError):
        locks.take(home / "logs" / "victim", 0o600)
    assert (secret_dir / "victim").read_text() == "root's data"
    assert sorted(p.name for p in secret_dir.iterdir()) == ["gateway_state.json", "victim"]


def test_a_home_swapped_for_a_link_under_a_running_writer_is_refused_from_then_on(tmp_path: Path) -> None:
    home = tmp_path / "hermes"
    private.make_dir(home / "watchdog")
    private.write_text(home / "watchdog" / "state.json", "{}")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "watchdog").mkdir(parents=True)
    home.rename(tmp_path / "moved")
    _user_link(home, elsewhere)
    with pytest.raises(OSError) as exc:
        private.write_text(home / "watchdog" / "state.json", "{}")
    assert _refused(exc)
    assert list((elsewhere / "watchdog").iterdir()) == []


def test_links_of_root_or_of_the_watchdogs_own_user_are_followed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "gateway_state.json").write_text("{}")
    (tmp_path / "via").symlink_to(real)  # root's own link, as macOS's /var -> /private/var
    raw, error = statefile.read_bytes(tmp_path / "via" / "gateway_state.json")
    assert (raw, error) == (b"{}", None)
    private.write_text(tmp_path / "via" / "new.json", "[]")
    assert (real / "new.json").read_text() == "[]"


def test_the_tick_probe_never_connects_to_a_socket_the_user_points_at(tmp_path: Path) -> None:
    """A root-only socket, reached through a state dir the user swapped for a link (or named by a link of
    the user's as the tick socket): no connection reaches it, and its "1" vetoes nothing."""
    private_dir = tmp_path / "root-only"
    private_dir.mkdir(mode=0o700)
    server = bound_unix_socket(private_dir / "gateway.loop-tick.4242.sock")  # any path length
    server.settimeout(0.2)
    accepted: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            accepted.append(1)
            conn.sendall(b"1")
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        home = tmp_path / "uhome"
        home.mkdir()
        _user_link(home / "state", private_dir)
        assert looptick.probe(home, 4242, 0, tries=3, timeout=0.5, pause=0.0) is None
        (home / "state").unlink()
        (home / "state").mkdir()
        _user_link(looptick.socket_path(home, 4242), private_dir / "gateway.loop-tick.4242.sock")
        assert looptick.probe(home, 4242, 0, tries=3, timeout=0.5, pause=0.0) is None
        assert accepted == []
        # The control: the same socket where it belongs is probed and answers.
        assert looptick.probe(private_dir.parent, 4242, 0, tries=1, timeout=5.0) is None  # not at state/
        (home / "state" / "gateway.loop-tick.4242.sock").unlink()
        os.rename(private_dir / "gateway.loop-tick.4242.sock", home / "state" / "gateway.loop-tick.4242.sock")
        got = looptick.probe(home, 4242, 0, tries=1, timeout=5.0)
        assert got is not None and got.answered and accepted == [1]
    finally:
        stop.set()
        t.join(5)
        server.close()


def test_lstat_and_open_dir_walk_without_user_links(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    _user_link(tmp_path / "l", tmp_path / "d")
    assert safepath.lstat(tmp_path / "l").st_uid == pwd.getpwnam("nobody").pw_uid  # the link itself
    with pytest.raises(OSError) as exc:
        safepath.open_dir(tmp_path / "l")
    assert _refused(exc)
    fd = safepath.open_dir(tmp_path / "d")
    os.close(fd)


