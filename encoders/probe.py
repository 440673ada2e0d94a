"""Probe a frozen backbone (or an ActionEncoder's tokens) for temporal-order knowledge (STEP, Tables 2-4).

    python encoders/probe.py --probe step --backbone efficientnet_lite0 --data DIR --frames 16
    python encoders/probe.py --probe attentive --backbone pixels --data DIR --frames 8 --order reverse
    python encoders/probe.py --config configs/probe/step.yaml data=DIR out=runs/probe/x proj_dim=128
    python encoders/probe.py factors --config configs/probe/factors.yaml   # linear factor probes, see below
    python encoders/probe.py motion --config configs/probe/motion.yaml     # a CNN on frame differences

Trains on `train_split`, evaluates on `eval_split` under each test-time frame order
(correct | shuffle | reverse; `--order` takes one or a comma list) and writes `results.json`,
`results.md` and the resolved `config.yaml` into `out` (default runs/probe/<probe>-<time>/).

`factors`: closed-form linear probes of action / object / subject on frozen frame features (pooled vs
token grid, per input size), train-scene vs held-out-scene, optionally on a RoboAct-CLIP export's
embeddings (encoders/probes/factors.py; the RoboAct-CLIP diagnosis, docs/results/roboact_diagnosis.md).

`motion`: a small CNN trained from pixels on the frames, their differences, or the differences plus
the appearance of what moved; action / object accuracy on held-out scenes (encoders/probes/motion.py).
"""

from __future__ import annotations

import sys

from configs.cli import run_cli
from configs.loader import parse_cli
from encoders.probes.experiment import run_probe
from encoders.probes.factors import FactorProbeConfig, run_factor_probes
from encoders.probes.motion import MotionProbeConfig, run_motion_probe
from encoders.probes.train import ProbeConfig

FLAGS = {
    "--probe": ("probe", "linear | attentive | self_attentive | step"),
    "--backbone": ("backbone", "frozen image backbone spec (efficientnet_lite0, pixels, hf:DIR)"),
    "--encoder": ("encoder", "ActionEncoder name or directory whose tokens(video) are probed instead"),
    "--data": ("data", "dataset directory (index.parquet + meta.json)"),
    "--frames": ("frames", "frames per clip given to the probe"),
    "--order": ("orders", "test-time frame order(s): correct, shuffle, reverse (comma list)"),
    "--epochs": ("epochs", "training epochs"),
    "--seed": ("seed", "seed"),
    "--out": ("out", "output folder"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["factors"]:
        run_factor_probes(parse_cli(FactorProbeConfig, argv[1:], description=__doc__,
                                    prog="encoders/probe.py factors"))
        return 0
    if argv[:1] == ["motion"]:
        run_motion_probe(parse_cli(MotionProbeConfig, argv[1:], description=__doc__, prog="encoders/probe.py motion"))
        return 0
    cfg = parse_cli(ProbeConfig, argv, description=__doc__, flags=FLAGS, prog="encoders/probe.py")
    run_probe(cfg)  # bad input (a missing dataset, an unknown probe or backbone): one line, exit 2 (run_cli)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
