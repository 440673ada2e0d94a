"""`tcp`: the Robot protocol as JSON lines over TCP, for vendor SDK bridges (no ROS).

Wire format (UTF-8, one JSON object per line, `\\n`-terminated; version PROTOCOL_VERSION):

    request  {"id": 7, "op": "get_observation", "args": {}}
    reply    {"id": 7, "ok": true, "result": {...}}        or   {"id": 7, "ok": false, "error": "..."}

ops: hello -> {"version", "name", "observation_features", "action_features"}; connect; disconnect;
is_connected; clock -> the arm side's time in s; get_observation -> obs; send_action {"action": {...}} -> sent action; reset {"seed"}
(only where the backend has one). Arrays (camera frames) travel as
{"__ndarray__": base64, "dtype": "uint8", "shape": [H, W, 3]}; feature shapes as lists.

Authentication (a server given a shared token; required for any bind address but loopback):

    server -> {"auth": "hmac-sha256", "version": 1, "nonce": Ns}                  on connect, Ns 32 random bytes (hex)
    client -> {"id": 0, "op": "auth", "args": {"nonce": Nc, "mac": HMAC(token, "atomvla-bridge auth" 0 Ns Nc)}}
    server -> MAC " " {"id": 0, "ok": true, "result": null, "seq": 0}

then every line both ways is `hex(HMAC(key, body)) + " " + body`, body the JSON object, with
key_c2s = HMAC(token, "atomvla-bridge c2s" 0 Ns Nc) for requests and key_s2c likewise ("s2c") for
replies. Requests carry "seq" = 1, 2, 3, ... and each reply echoes its request's seq. So a captured
line is worth nothing elsewhere: in another session the keys differ (both nonces are fresh), and in the
same session its seq is spent. A client's auth answer fails the same way in another session. The
server answers any failure (no/wrong token, bad MAC, replayed or out-of-order seq, an oversized line,
no answer within AUTH_TIMEOUT_S) with one unsigned error line and closes the connection; MACs are
compared with `hmac.compare_digest`. A client holding a token refuses a server that sends no challenge,
and checks every reply's MAC and seq. The token never travels; nothing is encrypted (frames and
actions are readable on the wire: tunnel them, e.g. over SSH or WireGuard, where that matters).
Tokens come from a file (`token_file`, owner-only permissions) or the ATOMVLA_BRIDGE_TOKEN environment
variable, never from a command line (`load_token`).

`BridgeServer` serves any Robot (scripts/arm_bridge_server.py serves the twin). It binds 127.0.0.1
unless told otherwise (and refuses a non-loopback bind without a token), bounds each request line
(`max_line` bytes; longer lines are discarded up to their newline and answered with an error), answers
malformed JSON / unknown ops / bad arguments with an error reply and keeps serving; one worker thread
makes every robot call (clients are serialised). `TcpRobot` is the client, registered as "tcp".
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import secrets
import socket
import socketserver
import stat
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from real_robot.robot import ROBOTS, DeviceNotConnectedError, Robot

PROTOCOL_VERSION = 1
DEFAULT_PORT = 50710
MAX_REQUEST = 64 * 1024  # requests are small (an action is ~300 bytes)
MAX_REPLY = 64 * 1024 * 1024  # observations carry camera frames
TOKEN_ENV = "ATOMVLA_BRIDGE_TOKEN"
MIN_TOKEN_BYTES = 16
AUTH_TIMEOUT_S = 10.0  # an unauthenticated connection gets this long to answer the challenge
NONCE_BYTES = 32
_MAC_HEX = 64  # hex digits of an HMAC-SHA256
_log = logging.getLogger(__name__)


class BridgeAuthError(RuntimeError):
    """A token could not be loaded, a bind needs one, or a bridge refused / failed authentication."""


def load_token(token_file: str | os.PathLike[str] | None = None,
               env: Mapping[str, str] | None = None) -> bytes | None:
    """The shared token: from `token_file` if given, else the ATOMVLA_BRIDGE_TOKEN variable, else None.

    Surrounding whitespace is stripped. A file readable by group or others, a missing file, or a token
    shorter than MIN_TOKEN_BYTES raises BridgeAuthError with one line (the token itself is never shown).
    """
    if token_file is not None:
        path = Path(token_file)
        try:
            st = path.stat()
            raw = path.read_bytes()
        except OSError as e:
            raise BridgeAuthError(f"token file {path}: cannot read it ({e.strerror or e})") from None
        if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise BridgeAuthError(f"token file {path}: readable by others (mode {stat.S_IMODE(st.st_mode):o}); "
                                  f"run: chmod 600 {path}")
        token, source = raw.strip(), f"token file {path}"
    else:
        value = (os.environ if env is None else env).get(TOKEN_ENV)
        if value is None:
            return None
        token, source = value.strip().encode("utf-8"), f"${TOKEN_ENV}"
    if len(token) < MIN_TOKEN_BYTES:
        raise BridgeAuthError(f"{source}: token has {len(token)} bytes, need at least {MIN_TOKEN_BYTES} "
                              "(make one: python -c 'import secrets; print(secrets.token_hex(32))')")
    return token


def is_loopback(host: str) -> bool:
    """Whether every address `host` resolves to is a loopback address ('' and 0.0.0.0 are not)."""
    if host in ("", "0.0.0.0", "::"):
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)


def _mac(key: bytes, *parts: bytes) -> bytes:
    return hmac.new(key, b"\x00".join(parts), hashlib.sha256).digest()


def auth_answer(token: bytes, server_nonce: bytes, client_nonce: bytes) -> str:
    """The client's answer to a challenge: hex HMAC-SHA256(token, 'atomvla-bridge auth' 0 Ns 0 Nc)."""
    return _mac(token, b"atomvla-bridge auth", server_nonce, client_nonce).hex()


class Session:
    """One authenticated connection's keys and sequence numbers (both sides use it; `side` says which).

    `seal` signs an outgoing JSON object; `open` checks an incoming line's MAC and returns its object.
    Sequence numbers are enforced by the caller (the server wants seq == last + 1, the client wants its
    request's seq echoed).
    """

    def __init__(self, token: bytes, server_nonce: bytes, client_nonce: bytes, side: str) -> None:
        c2s = _mac(token, b"atomvla-bridge c2s", server_nonce, client_nonce)
        s2c = _mac(token, b"atomvla-bridge s2c", server_nonce, client_nonce)
        self._send, self._recv = (s2c, c2s) if side == "server" else (c2s, s2c)
        self.seq = 0  # server: last accepted request seq; client: last sent

    def seal(self, msg: dict[str, Any]) -> bytes:
        body = json.dumps(msg).encode()
        return hmac.new(self._send, body, hashlib.sha256).hexdigest().encode() + b" " + body + b"\n"

    def open(self, line: bytes) -> dict[str, Any]:
        """A signed line -> its JSON object; ValueError (one line) for a missing / wrong MAC or bad JSON."""
        line = line.rstrip(b"\r\n")
        mac, sep, body = line.partition(b" ")
        if not sep or len(mac) != _MAC_HEX:
            raise ValueError("unsigned line on an authenticated connection")
        want = hmac.new(self._recv, body, hashlib.sha256).hexdigest().encode()
        if not hmac.compare_digest(want, mac):
            raise ValueError("bad MAC (a line from another session, or altered)")
        try:
            msg = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"malformed signed line: {e}") from None
        if not isinstance(msg, dict):
            raise ValueError("malformed signed line: expected a JSON object")
        return msg


def encode(obj: Any) -> Any:
    """numpy arrays / scalars / feature types -> JSON-able values (see module docstring)."""
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": base64.b64encode(np.ascontiguousarray(obj).tobytes()).decode("ascii"),
                "dtype": str(obj.dtype), "shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {str(k): encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [encode(v) for v in obj]
    if obj is float:
        return "float"
    return obj


def decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            raw = base64.b64decode(obj["__ndarray__"])
            return np.frombuffer(raw, dtype=np.dtype(obj["dtype"])).reshape(obj["shape"]).copy()
        return {k: decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    return obj


def _features(feats: dict[str, Any]) -> dict[str, Any]:
    return {k: ("float" if v is float else list(v)) for k, v in feats.items()}


def _unfeatures(feats: dict[str, Any]) -> dict[str, Any]:
    return {k: (float if v == "float" else tuple(v)) for k, v in feats.items()}


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        session = None
        if self.server.token is not None:
            session = self._handshake()
            if session is None:
                return
        limit = self.server.max_line + (_MAC_HEX + 1 if session is not None else 0)
        while True:
            line = self.rfile.readline(limit + 1)
            if not line:
                return
            if len(line) > limit and not line.endswith(b"\n"):
                if session is not None:  # unverifiable: refuse and close
                    self._refuse(f"request line exceeds {self.server.max_line} bytes")
                    return
                # oversized: drop the rest of this line (bounded reads), answer, keep serving
                while True:
                    more = self.rfile.readline(limit + 1)
                    if not more or more.endswith(b"\n"):
                        break
                self._reply({"id": None, "ok": False, "error": f"request line exceeds {limit} bytes"})
                if not more:
                    return
                continue
            if session is None:
                self._reply(self.server.dispatch(line))
                continue
            try:
                req = session.open(line)
            except ValueError as e:
                self._refuse(str(e))
                return
            seq = req.get("seq")
            if not isinstance(seq, int) or isinstance(seq, bool) or seq != session.seq + 1:
                self._refuse(f"replayed or out-of-order request (seq {seq!r}, expected {session.seq + 1})")
                return
            session.seq = seq
            reply = self.server.dispatch_request(req)
            reply["seq"] = seq
            self._write(session.seal(reply))

    def _handshake(self) -> Session | None:
        """Challenge, check the answer; the session on success, else None (after one error line)."""
        assert self.server.token is not None
        nonce = secrets.token_bytes(NONCE_BYTES)
        self.connection.settimeout(AUTH_TIMEOUT_S)
        self._reply({"auth": "hmac-sha256", "version": PROTOCOL_VERSION, "nonce": nonce.hex()})
        try:
            line = self.rfile.readline(1024 + 1)
        except OSError:  # includes the timeout
            self._refuse(f"authentication required: no answer to the challenge within {AUTH_TIMEOUT_S:g} s")
            return None
        try:
            req = json.loads(line.decode("utf-8"))
            args = req["args"]
            assert req["op"] == "auth"
            client_nonce = bytes.fromhex(args["nonce"])
            mac = str(args["mac"]).encode("ascii")
            assert len(client_nonce) == NONCE_BYTES
        except (UnicodeDecodeError, UnicodeEncodeError, json.JSONDecodeError, KeyError, TypeError,
                ValueError, AssertionError):
            self._refuse("authentication required: the first line must be "
                         '{"op": "auth", "args": {"nonce": ..., "mac": ...}} (see real_robot/tcp.py)')
            return None
        want = auth_answer(self.server.token, nonce, client_nonce).encode("ascii")
        if not hmac.compare_digest(want, mac):
            self._refuse("authentication failed: wrong token")
            return None
        self.connection.settimeout(None)
        session = Session(self.server.token, nonce, client_nonce, side="server")
        self._write(session.seal({"id": req.get("id"), "ok": True, "result": None, "seq": 0}))
        return session

    def _refuse(self, why: str) -> None:
        peer = self.client_address[0] if self.client_address else "?"
        _log.warning("bridge: closed a connection from %s: %s", peer, why)
        self._reply({"id": None, "ok": False, "error": why})

    def _reply(self, msg: dict[str, Any]) -> None:
        self._write(json.dumps(msg).encode() + b"\n")

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    max_line: int

    def __init__(self, addr: tuple[str, int], robot: Robot, max_line: int, token: bytes | None) -> None:
        super().__init__(addr, _Handler)
        self.robot = robot
        self.max_line = max_line
        self.token = token
        # every robot call runs on this one thread: requests from several clients are serialised, and a
        # simulator's GL context (bound to the thread that made it) is only ever used from one thread
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="robot")

    def dispatch(self, line: bytes) -> dict[str, Any]:
        try:
            req = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            return {"id": None, "ok": False, "error": f"malformed request (not a JSON line): {e}"}
        if not isinstance(req, dict):
            return {"id": None, "ok": False, "error": "malformed request: expected a JSON object"}
        return self.dispatch_request(req)

    def dispatch_request(self, req: dict[str, Any]) -> dict[str, Any]:
        rid = req.get("id")
        op, args = req.get("op"), req.get("args", {})
        if not isinstance(args, dict):
            return {"id": rid, "ok": False, "error": "field 'args' must be an object"}
        try:
            result = self.pool.submit(self._run, op, args).result()
            return {"id": rid, "ok": True, "result": encode(result)}
        except Exception as e:  # noqa: BLE001 -- any backend error becomes an error reply, never a dead server
            return {"id": rid, "ok": False, "error": f"{type(e).__name__}: {e}"}

    def _run(self, op: Any, args: dict[str, Any]) -> Any:
        r = self.robot
        if op == "hello":
            return {"version": PROTOCOL_VERSION, "name": getattr(r, "name", "robot"),
                    "observation_features": _features(r.observation_features),
                    "action_features": _features(r.action_features)}
        if op == "connect":
            if not r.is_connected:
                r.connect()
            return None
        if op == "disconnect":
            if r.is_connected:
                r.disconnect()
            return None
        if op == "is_connected":
            return bool(r.is_connected)
        if op == "clock":
            return float(r.clock()) if hasattr(r, "clock") else time.monotonic()
        if op == "get_observation":
            return r.get_observation()
        if op == "send_action":
            action = args.get("action")
            if not isinstance(action, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                       for v in action.values()):
                raise ValueError("send_action needs args.action: an object of numbers")
            return r.send_action(action)
        if op == "reset":
            if not hasattr(r, "reset"):
                raise ValueError(f"backend {getattr(r, 'name', '?')} has no reset")
            seed = args.get("seed")
            r.reset(None if seed is None else int(seed))
            return None
        raise ValueError(f"unknown op {op!r}")


class BridgeServer:
    """Serve `robot` on host:port (port 0 = any free port; see `.port`). `start()` runs in a thread.

    With `token` (see `load_token`) every connection must authenticate first (module docstring);
    without one only a loopback `host` is allowed (BridgeAuthError otherwise, before anything binds).
    """

    def __init__(self, robot: Robot, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 max_line: int = MAX_REQUEST, token: bytes | None = None) -> None:
        if token is not None and len(token) < MIN_TOKEN_BYTES:
            raise BridgeAuthError(f"token has {len(token)} bytes, need at least {MIN_TOKEN_BYTES}")
        if token is None and not is_loopback(host):
            raise BridgeAuthError(f"refusing to bind {host!r} without a token: off loopback the bridge needs a "
                                  f"shared token (--token-file PATH or ${TOKEN_ENV})")
        self._server = _Server((host, port), robot, max_line, token)
        self.host, self.port = self._server.server_address[:2]
        self.authenticated = token is not None
        self._thread: threading.Thread | None = None

    def start(self) -> BridgeServer:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        r = self._server.robot
        # disconnect on the robot thread (it owns the simulator's GL context)
        self._server.pool.submit(lambda: r.disconnect() if r.is_connected else None).result(timeout=10)
        self._server.pool.shutdown(wait=True)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> BridgeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class RemoteError(RuntimeError):
    """The bridge answered a request with an error reply."""


@ROBOTS.register("tcp")
class TcpRobot:
    """Client side of the bridge: a Robot whose calls travel as JSON lines to `host:port`.

    The shared token comes from `token_file` or else $ATOMVLA_BRIDGE_TOKEN (there is deliberately no
    `token=` argument: `--robot tcp key=value` arguments are a command line). With a token the client
    answers the server's challenge on connecting and signs every request; it refuses a server that
    does not challenge it (BridgeAuthError). Without one, a server that wants a token is reported so.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, timeout_s: float = 10.0,
                 token_file: str | None = None) -> None:
        self.host, self.port, self.timeout_s = host, int(port), float(timeout_s)
        self.name = "tcp"
        self._token = load_token(token_file)
        self._sock: socket.socket | None = None
        self._file: Any = None
        self._session: Session | None = None
        self._id = 0
        self._hello: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def _drop(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._sock is not None:
            self._sock.close()
        self._sock = self._file = self._session = None

    def _open(self) -> None:
        self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        self._file = self._sock.makefile("rwb")
        if self._token is None:
            return
        where = f"bridge {self.host}:{self.port}"
        try:
            line = self._file.readline(4096)
        except TimeoutError:
            self._drop()
            raise BridgeAuthError(f"{where} sent no auth challenge within {self.timeout_s:g} s: it runs "
                                  "without a token; refusing to send commands unauthenticated") from None
        try:
            hello = json.loads(line)
            server_nonce = bytes.fromhex(hello["nonce"])
            assert hello.get("auth") == "hmac-sha256"
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, AssertionError):
            self._drop()
            raise BridgeAuthError(f"{where} did not open with an auth challenge: {line[:200]!r}") from None
        client_nonce = secrets.token_bytes(NONCE_BYTES)
        self._file.write(json.dumps({"id": 0, "op": "auth", "args": {
            "nonce": client_nonce.hex(), "mac": auth_answer(self._token, server_nonce, client_nonce)}}).encode()
            + b"\n")
        self._file.flush()
        session = Session(self._token, server_nonce, client_nonce, side="client")
        line = self._file.readline(4096)
        try:
            reply = session.open(line)
            assert reply.get("ok") is True and reply.get("seq") == 0
        except (ValueError, AssertionError):
            self._drop()
            raise BridgeAuthError(f"{where} refused authentication: {_error_of(line)}") from None
        self._session = session

    def _call(self, op: str, **args: Any) -> Any:
        with self._lock:
            if self._sock is None:
                self._open()
            self._id += 1
            req = {"id": self._id, "op": op, "args": encode(args)}
            session = self._session
            if session is None:
                self._file.write(json.dumps(req).encode() + b"\n")
            else:
                session.seq += 1
                req["seq"] = session.seq
                self._file.write(session.seal(req))
            self._file.flush()
            line = self._file.readline(MAX_REPLY + _MAC_HEX + 2)
            if session is not None and line:
                try:
                    reply = session.open(line)
                    if reply.get("seq") != req["seq"]:
                        raise ValueError(f"reply carries seq {reply.get('seq')!r}, expected {req['seq']}")
                except ValueError as e:
                    self._drop()
                    raise BridgeAuthError(f"bridge {self.host}:{self.port} on {op}: {_error_of(line) or e}") from None
            if not line:
                self._drop()
        if not line:
            raise ConnectionError(f"bridge {self.host}:{self.port} closed the connection")
        if session is None:
            if len(line) > MAX_REPLY:
                raise RemoteError(f"reply exceeds {MAX_REPLY} bytes")
            try:
                reply = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise RemoteError(f"bridge sent a malformed reply to {op}: {line[:200]!r}") from None
            if isinstance(reply, dict) and "auth" in reply and "ok" not in reply:
                with self._lock:
                    self._drop()
                raise BridgeAuthError(f"bridge {self.host}:{self.port} requires a token: put the shared token in "
                                      f"a file (token_file=PATH, mode 600) or ${TOKEN_ENV}")
        if not isinstance(reply, dict) or not reply.get("ok"):
            raise RemoteError(f"bridge error on {op}: {reply.get('error') if isinstance(reply, dict) else reply}")
        return decode(reply.get("result"))
    def _features(self) -> dict[str, Any]:
        if self._hello is None:
            self._hello = self._call("hello")
            self.name = f"tcp:{self._hello.get('name', '?')}"
        return self._hello

    @property
    def observation_features(self) -> dict[str, Any]:
        return _unfeatures(self._features()["observation_features"])

    @property
    def action_features(self) -> dict[str, Any]:
        return _unfeatures(self._features()["action_features"])

    @property
    def is_connected(self) -> bool:
        return self._sock is not None and bool(self._call("is_connected"))

    def connect(self, calibrate: bool = True) -> None:
        self._features()
        self._call("connect")

    def disconnect(self) -> None:
        if self._sock is None:
            return
        try:
            self._call("disconnect")
        finally:
            with self._lock:
                self._drop()

    def get_observation(self) -> dict[str, Any]:
        if self._sock is None:
            raise DeviceNotConnectedError("tcp robot is not connected; call connect() first")
        return self._call("get_observation")

    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        if self._sock is None:
            raise DeviceNotConnectedError("tcp robot is not connected; call connect() first")
        return self._call("send_action", action={k: float(v) for k, v in action.items()})

    def reset(self, seed: int | None = None) -> None:
        self._call("reset", seed=seed)

    def clock(self) -> float:
        """The arm side's clock (the served robot's own, else the bridge's monotonic clock): the safety
        layer times velocities and deadlines on it, so network jitter does not stretch them."""
        return float(self._call("clock"))


def _error_of(line: bytes) -> str:
    """The 'error' of an unsigned error line (what a server sends before closing), else ''."""
    try:
        msg = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return ""
    return str(msg.get("error", "")) if isinstance(msg, dict) else ""
