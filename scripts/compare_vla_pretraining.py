"""Latent-action pretraining compared (invact.txt Sec. 4 / App. A.3, Fig. 7): none vs LAQ vs InvAct
vs RoboAct-CLIP (vs any encoder), each through the same VLA pipeline into LIBERO.

    python scripts/compare_vla_pretraining.py --config configs/vla/compare.yaml
    python scripts/compare_vla_pretraining.py --config configs/vla/compare.yaml variants=none,invact \\
        encoder_dirs.invact=runs/demo/invact/encoder out=runs/vla_compare/x
    python scripts/compare_vla_pretraining.py --config configs/vla/compare_tiny.yaml data=DIR demos=DIR out=DIR

The comparison itself (per-variant folders, resume, the table) is `vla.compare`; its docstring has
the details. This file is only the command line.
"""

from __future__ import annotations

import sys

from configs.cli import run_cli
from vla.compare import main

if __name__ == "__main__":
    sys.exit(run_cli(main))
