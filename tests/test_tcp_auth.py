"""The TCP arm bridge off loopback: token loading, the HMAC challenge, replay refusal, the CLI's refusals.

Real sockets on loopback and the real twin (no cameras, stepping per command); a recording TCP proxy
captures what the real client sends, to replay it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from real_robot import tcp
from real_robot.robot import action_dict, joints_of, make_robot
from real_robot.tcp import (
    TOKEN_ENV,
    BridgeAuthError,
    BridgeServer,
    Session,
    TcpRobot,
    auth_answer,
    is_loopback,
    load_token,
)

ROOT = Path(__file__).resolve().parents[1]
TOKEN = b"0123456789abcdef0123456789abcdef"


def _token_file(tmp_path: Path, token: bytes = TOKEN, name: str = "bridge.token") -> str:
    path = tmp_path / name
    path.write_bytes(token + b"\n")
    path.chmod(0o600)
    return str(path)


@pytest.fixture(autouse=True)
def _no_env_token(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)


@pytest.fixture
def twin():
    return make_robot("mujoco_twin", cameras=(), realtime_scale=0)


@pytest.fixture
def server(twin):
    with BridgeServer(twin, port=0, token=TOKEN) as s:
        yield s


class _Raw:
    """A hand-driven client connection: read the challenge, send lines, read lines."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.f = self.sock.makefile("rwb")

    def send(self, line: bytes) -> None:
        self.f.write(line)
        self.f.flush()

    def read(self) -> bytes:
        return self.f.readline()

    def closed_by_peer(self) -> bool:
        return self.f.readline() == b""

    def login(self, token: bytes = TOKEN) -> Session:
        challenge = json.loads(self.read())
        ns, nc = bytes.fromhex(challenge["nonce"]), os.urandom(32)
        self.send(json.dumps({"id": 0, "op": "auth", "args": {
            "nonce": nc.hex(), "mac": auth_answer(token, ns, nc)}}).encode() + b"\n")
        session = Session(token, ns, nc, side="client")
        ok = session.open(self.read())
        assert ok["ok"] is True and ok["seq"] == 0
        return session

    def close(self) -> None:
        self.f.close()
        self.sock.close()


def _error(line: bytes) -> str:
    msg = json.loads(line)
    assert msg["ok"] is False
    return msg["error"]


def test_right_token_works_end_to_end(server, twin, tmp_path):
    robot = make_robot("tcp", port=server.port, token_file=_token_file(tmp_path))
    robot.connect()
    try:
        assert robot.is_connected and twin.is_connected
        q = joints_of(robot.get_observation())
        sent = robot.send_action(action_dict(q + 0.02, 1.0, 10.0))
        assert sent["j0.pos"] == pytest.approx(q[0] + 0.02)
        for _ in range(5):
            robot.send_action(sent)
        assert joints_of(robot.get_observation())[0] > q[0] + 0.005  # the arm moved: commands arrived
    finally:
        robot.disconnect()
    assert not twin.is_connected


def test_token_from_environment(server, twin, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN.decode())
    robot = TcpRobot(port=server.port)
    robot.connect()
    assert twin.is_connected
    robot.disconnect()


def test_wrong_token_is_refused_and_closed(server, twin, tmp_path):
    robot = TcpRobot(port=server.port, token_file=_token_file(tmp_path, b"another-token-of-32-bytes-length"))
    with pytest.raises(BridgeAuthError, match="refused authentication: authentication failed: wrong token"):
        robot.connect()
    assert not twin.is_connected
    raw = _Raw(server.port)
    try:
        challenge = json.loads(raw.read())
        nc = os.urandom(32)
        raw.send(json.dumps({"op": "auth", "args": {"nonce": nc.hex(), "mac": auth_answer(
            b"another-token-of-32-bytes-length", bytes.fromhex(challenge["nonce"]), nc)}}).encode() + b"\n")
        assert _error(raw.read()) == "authentication failed: wrong token"
        assert raw.closed_by_peer()  # one error reply, then the connection is closed
    finally:
        raw.close()


def test_no_token_is_refused_with_one_line_and_closed(server, twin):
    with pytest.raises(BridgeAuthError, match=f"requires a token: .*{TOKEN_ENV}"):
        TcpRobot(port=server.port).connect()
    raw = _Raw(server.port)
    try:
        assert json.loads(raw.read())["auth"] == "hmac-sha256"  # the challenge comes first
        raw.send(b'{"id": 1, "op": "connect"}\n')  # a plain request: not executed
        assert "authentication required" in _error(raw.read())
        assert raw.closed_by_peer()
    finally:
        raw.close()
    assert not twin.is_connected


def test_silent_connection_times_out(twin, monkeypatch):
    monkeypatch.setattr(tcp, "AUTH_TIMEOUT_S", 0.3)
    with BridgeServer(twin, port=0, token=TOKEN) as server:
        raw = _Raw(server.port)
        try:
            raw.read()  # the challenge; then say nothing
            assert "no answer to the challenge" in _error(raw.read())
            assert raw.closed_by_peer()
        finally:
            raw.close()


class _RecordingProxy:
    """Forwards one TCP connection to `port` and records every byte the client sent (a wiretap)."""

    def __init__(self, port: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.upstream = port
        self.sent = bytearray()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _pump(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        while data := src.recv(65536):
            if record:
                self.sent += data
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)

    def _run(self) -> None:
        client, _ = self.listener.accept()
        up = socket.create_connection(("127.0.0.1", self.upstream))
        back = threading.Thread(target=self._pump, args=(up, client, False), daemon=True)
        back.start()
        try:
            self._pump(client, up, True)
        except OSError:
            pass
        back.join(timeout=5)
        client.close()
        up.close()
        self.listener.close()

    def lines(self) -> list[bytes]:
        self.thread.join(timeout=10)
        return [ln + b"\n" for ln in bytes(self.sent).split(b"\n") if ln]


def test_lines_captured_from_an_earlier_session_are_refused(server, twin, tmp_path):
    proxy = _RecordingProxy(server.port)
    robot = TcpRobot(port=proxy.port, token_file=_token_file(tmp_path))
    robot.connect()  # through the wiretap: auth, hello, connect
    robot.disconnect()
    captured = proxy.lines()
    auth_line, hello_line, connect_line = captured[:3]
    assert b'"op": "auth"' in auth_line and b'"op": "connect"' in connect_line
    assert not twin.is_connected

    raw = _Raw(server.port)  # replay the recorded answer to the old challenge
    try:
        raw.read()
        raw.send(auth_line)
        assert _error(raw.read()) == "authentication failed: wrong token"
        assert raw.closed_by_peer()
    finally:
        raw.close()

    raw = _Raw(server.port)  # even inside a valid session, the old session's signed lines are refused
    try:
        raw.login()
        raw.send(connect_line)
        assert "bad MAC" in _error(raw.read())
        assert raw.closed_by_peer()
    finally:
        raw.close()
    assert not twin.is_connected  # the replayed connect never ran


def test_repeated_or_skipped_sequence_number_is_refused(server, twin):
    raw = _Raw(server.port)
    try:
        session = raw.login()
        session.seq += 1
        line = session.seal({"id": 1, "op": "is_connected", "args": {}, "seq": session.seq})
        raw.send(line)
        reply = session.open(raw.read())
        assert reply == {"id": 1, "ok": True, "result": False, "seq": 1}
        raw.send(line)  # the same signed line again
        assert _error(raw.read()) == "replayed or out-of-order request (seq 1, expected 2)"
        assert raw.closed_by_peer()
    finally:
        raw.close()
    raw = _Raw(server.port)
    try:
        session = raw.login()
        raw.send(session.seal({"id": 1, "op": "connect", "args": {}, "seq": 5}))
        assert _error(raw.read()) == "replayed or out-of-order request (seq 5, expected 1)"
        assert raw.closed_by_peer()
    finally:
        raw.close()
    assert not twin.is_connected


def test_unsigned_line_after_login_is_refused(server, twin):
    raw = _Raw(server.port)
    try:
        raw.login()
        raw.send(b'{"id": 1, "op": "connect", "seq": 1}\n')
        assert _error(raw.read()) == "unsigned line on an authenticated connection"
        assert raw.closed_by_peer()
    finally:
        raw.close()
    assert not twin.is_connected


def test_client_with_token_refuses_a_server_without_one(twin, tmp_path):
    with BridgeServer(twin, port=0) as server:
        robot = TcpRobot(port=server.port, timeout_s=0.5, token_file=_token_file(tmp_path))
        with pytest.raises(BridgeAuthError, match="sent no auth challenge"):
            robot.connect()
    assert not twin.is_connected


def test_loopback_without_token_keeps_todays_protocol(twin):
    with BridgeServer(twin, port=0) as server:
        robot = TcpRobot(port=server.port)
        robot.connect()
        assert twin.is_connected
        robot.disconnect()


def test_non_loopback_bind_without_token_is_refused(twin):
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and not is_loopback("0.0.0.0")
    with pytest.raises(BridgeAuthError, match="refusing to bind '0.0.0.0' without a token"):
        BridgeServer(twin, host="0.0.0.0", port=0)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    full.update(PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "scripts/arm_bridge_server.py", *args], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=120)


def test_cli_refuses_non_loopback_bind_without_token():
    r = _cli("--host", "0.0.0.0", "--port", "0", "--cameras", "")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        "error: refusing to bind '0.0.0.0' without a token: off loopback the bridge needs a shared token "
        f"(--token-file PATH or ${TOKEN_ENV})"]


def test_cli_refuses_a_token_on_the_command_line_without_echoing_it():
    r = _cli("--host", "0.0.0.0", "--token", "s3cret-s3cret-s3cret")
    assert r.returncode == 2 and "--token-file" in r.stderr and "s3cret" not in r.stderr + r.stdout
    assert len(r.stderr.strip().splitlines()) == 1


def test_cli_refuses_a_world_readable_token_file(tmp_path):
    path = tmp_path / "t"
    path.write_bytes(TOKEN)
    path.chmod(0o644)
    r = _cli("--host", "0.0.0.0", "--token-file", str(path))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: token file {path}: readable by others (mode 644); "
                                             f"run: chmod 600 {path}"]


def test_load_token_sources(tmp_path):
    assert load_token(None, env={}) is None
    assert load_token(None, env={TOKEN_ENV: f" {TOKEN.decode()}\n"}) == TOKEN
    assert load_token(_token_file(tmp_path)) == TOKEN
    with pytest.raises(BridgeAuthError, match="token has 5 bytes, need at least 16"):
        load_token(None, env={TOKEN_ENV: "short"})
    with pytest.raises(BridgeAuthError, match="cannot read it"):
        load_token(tmp_path / "missing")
