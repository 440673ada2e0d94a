"""`tcp`: the Robot protocol as JSON lines over TCP, for vendor SDK bridges (no ROS).

Wire format (UTF-8, one JSON object per line, `\\n`-terminated; version PROTOCOL_VERSION):

    request  {"id": 7, "op": "get_observation", "args": {}}
    reply    {"id": 7, "ok": true, "result": {...}}        or   {"id": 7, "ok": false, "error": "..."}

ops: hello -> {"version", "name", "observation_features", "action_features"}; connect; disconnect;
is_connected; clock -> the arm side's time in s; get_observation -> obs; send_action {"action": {...}} -> sent action; reset {"seed"}
(only where the backend has one). Arrays (camera frames) travel as
{"__ndarray__": base64, "dtype": "uint8", "shape": [H, W, 3]}; feature shapes as lists.

`BridgeServer` serves any Robot (scripts/arm_bridge_server.py serves the twin). It binds 127.0.0.1
unless told otherwise, bounds each request line (`max_line` bytes; longer lines are discarded up to
their newline and answered with an error), answers malformed JSON / unknown ops / bad arguments with
an error reply and keeps serving; one worker thread makes every robot call (clients are serialised).
`TcpRobot` is the client, registered as "tcp".
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import socket
import socketserver
import threading
import time
from typing import Any

import numpy as np

from real_robot.robot import ROBOTS, DeviceNotConnectedError, Robot

PROTOCOL_VERSION = 1
DEFAULT_PORT = 50710
MAX_REQUEST = 64 * 1024  # requests are small (an action is ~300 bytes)
MAX_REPLY = 64 * 1024 * 1024  # observations carry camera frames


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
        limit = self.server.max_line
        while True:
            line = self.rfile.readline(limit + 1)
            if not line:
                return
            if len(line) > limit and not line.endswith(b"\n"):
                # oversized: drop the rest of this line (bounded reads), answer, keep serving
                while True:
                    more = self.rfile.readline(limit + 1)
                    if not more or more.endswith(b"\n"):
                        break
                self._reply({"id": None, "ok": False, "error": f"request line exceeds {limit} bytes"})
                if not more:
                    return
                continue
            self._reply(self.server.dispatch(line))

    def _reply(self, msg: dict[str, Any]) -> None:
        try:
            self.wfile.write(json.dumps(msg).encode() + b"\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    max_line: int

    def __init__(self, addr: tuple[str, int], robot: Robot, max_line: int) -> None:
        super().__init__(addr, _Handler)
        self.robot = robot
        self.max_line = max_line
        # every robot call runs on this one thread: requests from several clients are serialised, and a
        # simulator's GL context (bound to the thread that made it) is only ever used from one thread
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="robot")

    def dispatch(self, line: bytes) -> dict[str, Any]:
        rid = None
        try:
            req = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            return {"id": None, "ok": False, "error": f"malformed request (not a JSON line): {e}"}
        if not isinstance(req, dict):
            return {"id": None, "ok": False, "error": "malformed request: expected a JSON object"}
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
    """Serve `robot` on host:port (port 0 = any free port; see `.port`). `start()` runs in a thread."""

    def __init__(self, robot: Robot, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 max_line: int = MAX_REQUEST) -> None:
        self._server = _Server((host, port), robot, max_line)
        self.host, self.port = self._server.server_address[:2]
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
    """Client side of the bridge: a Robot whose calls travel as JSON lines to `host:port`."""

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, timeout_s: float = 10.0) -> None:
        self.host, self.port, self.timeout_s = host, int(port), float(timeout_s)
        self.name = "tcp"
        self._sock: socket.socket | None = None
        self._file: Any = None
        self._id = 0
        self._hello: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def _call(self, op: str, **args: Any) -> Any:
        with self._lock:
            if self._sock is None:
                self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
                self._file = self._sock.makefile("rwb")
            self._id += 1
            self._file.write(json.dumps({"id": self._id, "op": op, "args": encode(args)}).encode() + b"\n")
            self._file.flush()
            line = self._file.readline(MAX_REPLY + 1)
        if not line:
            raise ConnectionError(f"bridge {self.host}:{self.port} closed the connection")
        if len(line) > MAX_REPLY:
            raise RemoteError(f"reply exceeds {MAX_REPLY} bytes")
        try:
            reply = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RemoteError(f"bridge sent a malformed reply to {op}: {line[:200]!r}") from None
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
            self._file.close()
            self._sock.close()
            self._sock = self._file = None

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
