"""Temporal probes on frozen per-frame tokens: linear, attentive, self-attentive and STEP.

    from encoders.probes import build_probe, ProbeConfig, run_probe
    probe = build_probe("step", in_dim=1280, n_classes=12, frames=16)   # tokens (B, T, N, C) -> logits
    run_probe(ProbeConfig(probe="step", backbone="pixels", data="/tmp/aw", frames=8, out="/tmp/p"))

CLI: `python encoders/probe.py --probe step --backbone efficientnet_lite0 --data DIR --frames 16`.
"""

from encoders.probes.data import ORDERS, apply_order, frame_indices
from encoders.probes.experiment import run_probe
from encoders.probes.models import PROBES, Probe, build_probe
from encoders.probes.train import ProbeConfig, classification_report

__all__ = ["ORDERS", "PROBES", "Probe", "ProbeConfig", "apply_order", "build_probe", "classification_report",
           "frame_indices", "run_probe"]
