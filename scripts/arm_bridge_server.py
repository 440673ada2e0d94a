"""Reference vendor-SDK bridge: serve a robot over the JSON-lines TCP protocol of real_robot/tcp.py.

    python scripts/arm_bridge_server.py                              # the twin on 127.0.0.1:50710, real time
    python scripts/arm_bridge_server.py --port 0 --realtime-scale 0  # any free port (printed), fast stepping
    python real_robot/run_task.py --robot tcp port=50710             # a client

A bridge for a real arm replaces `make_robot("mujoco_twin")` by an object wrapping the vendor SDK with the
same seven Robot methods. The server binds loopback unless `--host` says otherwise (the protocol has no
authentication: expose it only on a trusted network), bounds each request line (`--max-line` bytes),
and answers malformed requests with an error reply without dropping the connection.
"""

from __future__ import annotations

import argparse
import signal
import sys

from real_robot.robot import make_robot
from real_robot.tcp import DEFAULT_PORT, MAX_REQUEST, BridgeServer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--robot", default="mujoco_twin", help="registered robot to serve (default mujoco_twin)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (0 = any free port)")
    p.add_argument("--max-line", type=int, default=MAX_REQUEST, help="largest accepted request line, bytes")
    p.add_argument("--realtime-scale", type=float, default=1.0, help="twin: 1 = real time, 0 = step per command")
    p.add_argument("--cameras", default="front,wrist", help="twin cameras to render, comma-separated ('' = none)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    kw = {}
    if a.robot == "mujoco_twin":
        kw = {"realtime_scale": a.realtime_scale, "cameras": tuple(c for c in a.cameras.split(",") if c),
              "seed": a.seed}
    robot = make_robot(a.robot, **kw)
    server = BridgeServer(robot, host=a.host, port=a.port, max_line=a.max_line)
    print(f"serving {a.robot} on {server.host}:{server.port} (JSON lines, max request {a.max_line} bytes)",
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
    sys.exit(main())
