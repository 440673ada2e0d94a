"""RoboAct-CLIP results on held-out scenes: accuracy table, frame-count study, A1-A6 ablations,
recombination of never-seen triplets, and video retrieval next to InvAct and the baselines.

    python scripts/roboact_results.py --data runs/demo/atomic_world --runs runs/roboact_results

Trains every variant on the train split (reusing `<runs>/<variant>/encoder` when it exists), scores
the val split (held-out scenes), and writes docs/results/roboact_clip.{json,md} with the command.

Accuracy, two readings per factor:
  head  = argmax of the auxiliary classifiers (Eq. 22) — untrained in A4 (reported, expected ~chance);
  text  = zero-shot: the clip's embedding (Eq. 24) against the Eq. 25 text features of Algorithm 1's
          description of every (subject, action, object) in the vocabulary product; the best
          description's factors are the prediction.
Recombination: for triplets in val but never in train, recombine(s, a, o) from the feature banks
(Eq. 18) must retrieve its own Eq. 19 text among the texts of all vocabulary triplets.
The work is `encoders.roboact.results.roboact_results`; this file only parses the command line.
"""

from __future__ import annotations

import shlex
import sys

from configs.cli import run_cli
from configs.loader import parse_cli
from encoders.roboact.results import ResultsConfig, roboact_results


def main(argv: list[str] | None = None) -> dict:
    argv_l = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_cli(ResultsConfig, argv_l, description=__doc__, prog="scripts/roboact_results.py",
                    flags={"--data": ("data", "dataset folder"), "--runs": ("runs", "training runs folder"),
                           "--steps": ("steps", "training steps per variant (0: config)")})  # fmt: skip
    command = "python scripts/roboact_results.py " + " ".join(shlex.quote(a) for a in argv_l)
    return roboact_results(cfg, command)


if __name__ == "__main__":
    sys.exit(run_cli(main))
