"""The worker side of the policy server (envs/policy_server.py): `RemotePolicy`, a `Policy` whose
model lives in the server process, reached over a local socket (`multiprocessing.connection`,
AF_UNIX). Each rollout hook is one message: `seed_episode`, `reset` and `observe` are one-way,
`act`, `done`, `label`, `label_object` and `episode_info` wait for the answer, at most `ServerSpec.timeout_s`.
A dead or silent server raises `PolicyServerError` (one line); the next call reconnects.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from multiprocessing.connection import Client, Connection
from typing import Any

import numpy as np

from envs.policy_api import Policy


class PolicyServerError(RuntimeError):
    """The policy server died, did not answer in time, or could not start (a one-line message)."""


@dataclass(frozen=True)
class ServerSpec:
    """What a worker needs to reach the server (picklable: handed to the worker processes)."""

    address: str  # the AF_UNIX socket path
    timeout_s: float  # how long a worker waits for an answer
    connect_timeout_s: float = 600.0  # ... and for a connection (a restarting server loads its model first)


def _stopped_reason(stopped: str) -> str:
    """The driver's one-line reason in `stopped`; the folder may vanish meanwhile (the server closed)."""
    try:
        with open(stopped) as f:
            return f.read()
    except OSError:
        return "policy server was closed"


class RemotePolicy(Policy):
    """A Policy whose model lives in the server process. `act`, `done`, `label`, `label_object`
    and `episode_info` wait for the answer (at most `spec.timeout_s`); a dead or silent server raises
    `PolicyServerError` (one line), after which the next episode's first hook reconnects."""

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        self._conn: Connection | None = None
        self.server_pid = 0
        self._connect()

    def _connect(self) -> None:
        deadline = time.monotonic() + self.spec.connect_timeout_s
        while True:
            try:
                conn = Client(self.spec.address, family="AF_UNIX")
                break
            except (FileNotFoundError, ConnectionRefusedError) as e:
                folder = os.path.dirname(self.spec.address)
                stopped = os.path.join(folder, "stopped")
                if not os.path.isdir(folder) or os.path.exists(stopped):  # closed, or stopped for good
                    raise PolicyServerError(_stopped_reason(stopped)) from None
                if time.monotonic() > deadline:
                    raise PolicyServerError(f"no policy server answers at {self.spec.address} within "
                                            f"{self.spec.connect_timeout_s:g}s ({type(e).__name__})") from None
                time.sleep(0.1)
        self._conn = conn
        hello = self._request("hello")
        self.inputs = hello["inputs"]
        self.gripper_convention = hello["gripper_convention"]  # type: ignore[misc]
        self.center_crop = hello["center_crop"]  # type: ignore[misc]
        self.server_pid = int(hello["pid"])
        self._hooks = set(hello["hooks"])

    def _lost(self, op: str, why: str) -> PolicyServerError:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        return PolicyServerError(f"policy server (pid {self.server_pid}) {why} during {op}")

    def _send(self, *msg: Any) -> None:
        if self._conn is None:
            self._connect()
        assert self._conn is not None
        try:
            self._conn.send(msg)
        except OSError:
            raise self._lost(msg[0], "died (connection closed)") from None

    def _request(self, *msg: Any) -> Any:
        self._send(*msg)
        assert self._conn is not None
        try:
            if not self._conn.poll(self.spec.timeout_s):
                raise self._lost(msg[0], f"did not answer within {self.spec.timeout_s:g}s (policy_timeout_s)")
            kind, value = self._conn.recv()
        except (EOFError, OSError):
            raise self._lost(msg[0], "died (connection closed)") from None
        if kind == "error":
            raise RuntimeError(f"policy server: {value}")
        return value

    def seed_episode(self, seed: int) -> None:
        self._send("seed", seed)

    def reset(self) -> None:
        self._send("reset")

    def observe(self, obs: dict, step: int) -> None:
        self._send("observe", obs, step)

    def act(self, obs: dict, instruction: str) -> np.ndarray:
        """-> what the served policy's `act` returns: (A,) or a (K, A) chunk."""
        return self._request("act", obs, instruction)

    def done(self) -> bool | None:
        return self._request("done") if "done" in self._hooks else None

    def label(self) -> str | None:
        return self._request("label") if "label" in self._hooks else None

    def label_object(self) -> str | None:
        return self._request("label_object") if "label_object" in self._hooks else None

    def episode_info(self) -> dict[str, Any]:
        return self._request("episode_info") if "episode_info" in self._hooks else {}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
