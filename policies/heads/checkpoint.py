"""A head checkpoint folder, shared by the policy-head kinds (`policy_head`, `twin_head`):

    policy.json          {"policy_type", "head": HeadConfig, ... the kind's own fields}
    head.safetensors     the head's weights (BatchNorm statistics included)

Writes are atomic; a missing field, a missing weights file or weights that do not fit the config are
one error line naming the file.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from configs.runs import atomic_write, atomic_write_json
from envs.policy_api import POLICY_FILE
from policies.heads.model import HeadConfig, HeadNetwork

HEAD_WEIGHTS = "head.safetensors"


def save_head(head: HeadNetwork, directory: str | Path, meta: dict[str, Any]) -> Path:
    """Write `head`'s weights and `meta` + its config ("head") into `directory`."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in head.state_dict().items()}
    atomic_write(d / HEAD_WEIGHTS, lambda p: save_file(state, str(p)))
    atomic_write_json(d / POLICY_FILE, {**meta, "head": dataclasses.asdict(head.cfg)})
    return d


def read_head_meta(directory: str | Path, kind: str, required: tuple[str, ...]) -> tuple[dict[str, Any], HeadConfig]:
    """policy.json of a `kind` checkpoint and its HeadConfig; a missing field names the file."""
    from configs.loader import from_dict

    f = Path(directory) / POLICY_FILE
    meta = json.loads(f.read_text())
    for key in ("head", *required):
        if key not in meta:
            raise ValueError(f"{f}: missing field {key!r} (not a {kind} checkpoint)")
    return meta, from_dict(HeadConfig, meta["head"], source=str(f))


def load_head_weights(head: HeadNetwork, directory: str | Path) -> HeadNetwork:
    """Load head.safetensors into `head` (built from the same folder's config)."""
    from safetensors.torch import load_file

    d = Path(directory)
    w = d / HEAD_WEIGHTS
    if not w.is_file():
        raise FileNotFoundError(f"{d}: no {HEAD_WEIGHTS}")
    try:
        head.load_state_dict(load_file(str(w)))
    except (OSError, RuntimeError) as e:  # torch lists every mismatch on its own line: keep the first
        first = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), str(e).strip())
        raise ValueError(f"{w}: weights do not fit the head in {d / POLICY_FILE}: {first}") from None
    return head
