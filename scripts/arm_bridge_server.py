"""Reference vendor-SDK bridge: serve a robot over the JSON-lines TCP protocol of real_robot/tcp.py.

    python scripts/arm_bridge_server.py                              # the twin on 127.0.0.1:50710, real time
    python scripts/arm_bridge_server.py --port 0 --realtime-scale 0  # any free port (printed), fast stepping
    python real_robot/run_task.py --robot tcp port=50710             # a client

    python -c 'import secrets; print(secrets.token_hex(32))' > bridge.token && chmod 600 bridge.token
    python scripts/arm_bridge_server.py --host 0.0.0.0 --token-file bridge.token   # off loopback: a token
    ATOMVLA_BRIDGE_TOKEN=$(cat bridge.token) python real_robot/run_task.py --robot tcp host=10.0.0.5  # client

A bridge for a real arm replaces `make_robot("mujoco_twin")` by an object wrapping the vendor SDK with the
same seven Robot methods. The server binds loopback unless `--host` says otherwise; any other address
needs a shared token, from `--token-file PATH` (owner-only permissions) or $ATOMVLA_BRIDGE_TOKEN, never
the command line (`--token` is refused: argv is visible to every user). With a token each connection
must answer an HMAC challenge and sign every request with a fresh sequence number, so captured lines
cannot be replayed (real_robot/tcp.py); nothing is encrypted. It bounds each request line
(`--max-line` bytes) and answers malformed requests with an error reply without dropping the connection.
"""

from __future__ import annotations

import argparse
import signal
import sys

from configs.cli import ArgumentParser, run_cli
from real_robot.robot import make_robot
from real_robot.tcp import (
    DEFAULT_PORT,
    MAX_REQUEST,
    TOKEN_ENV,
    BridgeAuthError,
    BridgeServer,
    is_loopback,
    load_token,
)


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(description=__doc__, allow_abbrev=False, prog="scripts/arm_bridge_server.py")
    p.add_argument("--robot", default="mujoco_twin", help="registered robot to serve (default mujoco_twin)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (0 = any free port)")
    p.add_argument("--max-line", type=int, default=MAX_REQUEST, help="largest accepted request line, bytes")
    p.add_argument("--realtime-scale", type=float, default=1.0, help="twin: 1 = real time, 0 = step per command")
    p.add_argument("--cameras", default="front,wrist", help="twin cameras to render, comma-separated ('' = none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--token-file", default=None,
                   help=f"file holding the shared token (mode 600); default ${TOKEN_ENV}, else none "
                        "(loopback only)")
    p.add_argument("--token", nargs="?", const="", default=None, help=argparse.SUPPRESS)  # refused, never shown
    a, extra = p.parse_known_args(argv)
    if a.token is not None:
        print("error: --token is not accepted (a command line is visible to every user): use --token-file PATH "
              f"or ${TOKEN_ENV}", file=sys.stderr)
        return 2
    if extra:
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        token = load_token(a.token_file)
        if token is None and not is_loopback(a.host):
            raise BridgeAuthError(f"refusing to bind {a.host!r} without a token: off loopback the bridge needs a "
                                  f"shared token (--token-file PATH or ${TOKEN_ENV})")
    except BridgeAuthError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    kw = {}
    if a.robot == "mujoco_twin":
        kw = {"realtime_scale": a.realtime_scale, "cameras": tuple(c for c in a.cameras.split(",") if c),
              "seed": a.seed}
    robot = make_robot(a.robot, **kw)
    server = BridgeServer(robot, host=a.host, port=a.port, max_line=a.max_line, token=token)
    auth = "token required (HMAC challenge)" if token is not None else "no token (loopback only)"
    print(f"serving {a.robot} on {server.host}:{server.port} (JSON lines, max request {a.max_line} bytes, {auth})",
          flush=True)
    def _stop(signum, frame):  # SIGTERM (a service manager) shuts down as cleanly as Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()  # also disconnects the robot
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
