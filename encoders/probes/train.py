"""Train a probe on frozen tokens of one split, evaluate it on another under frame-order corruptions.

Results (step_probing.txt Tables 2-4): accuracy per test-time order (correct / shuffle / reverse),
per-class accuracy, accuracy on the classes of the nearly-symmetric pairs listed in the dataset's
meta.json vs the other classes, the within-pair confusion rate, and the most common confusion of
every symmetric class.

Open choices (documented, not from the paper): AdamW, constant learning rate, cross-entropy, a fixed
number of epochs, the last epoch is evaluated (no model selection on the test split); shuffled
test orders are one seeded random permutation per clip.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from encoders.probes.data import ORDERS, apply_order
from encoders.probes.models import PROBES, build_probe


@dataclasses.dataclass
class ProbeConfig:
    """`python encoders/probe.py --probe step --backbone efficientnet_lite0 --data DIR --frames 16`."""

    probe: str = "step"  # linear | attentive | self_attentive | step
    backbone: str = "efficientnet_lite0"  # registry spec of the frozen image backbone
    encoder: str = ""  # optional ActionEncoder spec/dir: probe its tokens(video) instead of the backbone
    image_size: int = 0  # backbone input size; 0 = the backbone default
    data: str = "runs/demo/atomic_world"
    frames: int = 16  # frames per clip given to the probe (uniformly subsampled)
    orders: list[str] = dataclasses.field(default_factory=lambda: list(ORDERS))  # test-time frame orders
    label: str = "action"
    views: list[str] = dataclasses.field(default_factory=list)  # empty: every view
    train_split: str = "train"
    eval_split: str = "val"
    proj_dim: int = 0  # learnable per-token input projection width; 0 = the backbone width
    token_grid: int = 0  # average-pool each frame's token grid to g x g; 0 = keep
    heads: int = 8
    pe: str = "before"  # STEP only: "after" is the Supp. Table 18 ablation
    pe_init: float = 1.0  # STEP only: std of the temporal embedding's init (the paper leaves it open);
    # at 0.02 (a ViT's position-embedding init) the embedding is too small against the projected tokens
    # to shape attention in our short CPU runs, and STEP trains as if order-blind
    standardize: bool = True  # z-score every channel with train-split statistics (all probes alike)
    schedule: str = "cosine"  # "cosine" (the paper's annealing, per step) | "constant"
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 0  # 0: the free cores (configs.threads)
    out: str = ""  # output folder; empty: runs/probe/<probe>-<time>
    cache_dir: str = ""  # feature cache root; empty: $ATOMVLA_CACHE or .cache/atomvla

    def validate(self) -> None:
        if self.probe not in PROBES:
            raise ValueError(f"probe: {self.probe!r} is not one of {PROBES.names()}")
        bad = [o for o in self.orders if o not in ORDERS]
        if bad or not self.orders:
            raise ValueError(f"orders: {bad or self.orders!r} not in {list(ORDERS)}")
        if self.frames < 1:
            raise ValueError(f"frames: must be >= 1, got {self.frames}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if self.pe not in ("before", "after"):
            raise ValueError(f"pe: must be 'before' or 'after', got {self.pe!r}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule: must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.pe_init < 0:
            raise ValueError(f"pe_init: must be >= 0, got {self.pe_init}")


def train_probe(cfg: ProbeConfig, x: torch.Tensor, y: torch.Tensor, n_classes: int,
                log=print) -> tuple[torch.nn.Module, list[dict]]:
    """Fit probe `cfg.probe` on tokens `x (M, T, N, C)` or `(M, N, D)` with labels `y (M,)`."""
    # Not configs.training.fit, deliberately: (1) the default schedule is the paper's per-step cosine
    # annealing (LambdaLR below), and fit's optimiser has a constant learning rate with no scheduler hook;
    # (2) fit always writes a run folder (metrics.jsonl, checkpoints/) while a probe is seconds of work
    # that probe_results runs dozens of times in one process with write=False; (3) the result records
    # per-epoch training accuracy over one permutation per epoch, fit only knows steps. Nothing here needs
    # what fit adds (resume, data-parallel ranks): the inputs are cached tensors held in memory.
    torch.manual_seed(cfg.seed)
    kwargs = {"pe": cfg.pe, "pe_init": cfg.pe_init} if cfg.probe == "step" else {}
    frames = x.shape[1]
    model = build_probe(cfg.probe, x.shape[-1], n_classes, frames, proj_dim=cfg.proj_dim, heads=cfg.heads, **kwargs)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    total = cfg.epochs * ((len(y) + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, (lambda i: 0.5 * (1 + math.cos(math.pi * i / total))) if cfg.schedule == "cosine" else (lambda i: 1.0))
    history = []
    from tqdm import tqdm

    bar = tqdm(total=total, unit="batch", leave=False,
               desc=f"probe {cfg.probe}", disable=log is None)
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.randperm(len(y), generator=gen)
        tot, correct, t0 = 0.0, 0, time.perf_counter()
        for i in range(0, len(y), cfg.batch_size):
            b = perm[i : i + cfg.batch_size]
            logits = model(x[b].float())
            loss = F.cross_entropy(logits, y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(b)
            correct += int((logits.argmax(-1) == y[b]).sum())
            bar.update()
        rec = {"epoch": epoch + 1, "loss": tot / len(y), "train_acc": correct / len(y),
               "sec": round(time.perf_counter() - t0, 2)}
        history.append(rec)
        bar.set_postfix(epoch=epoch + 1, loss=f"{rec['loss']:.3f}", train_acc=f"{rec['train_acc']:.3f}")
        if log and (epoch + 1 == cfg.epochs or (epoch + 1) % max(1, cfg.epochs // 5) == 0):
            log(f"  {cfg.probe} epoch {epoch + 1}/{cfg.epochs}: loss {rec['loss']:.3f} train acc {rec['train_acc']:.3f}")
    bar.close()
    return model.eval(), history


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Argmax class of every row of `x`."""
    return torch.cat([model(x[i : i + batch_size].float()).argmax(-1) for i in range(0, len(x), batch_size)]).numpy()


def classification_report(y: np.ndarray, pred: np.ndarray, classes: list[str],
                          pairs: list[list[str]]) -> dict:
    """Accuracy, per-class accuracy, symmetric vs other classes (Table 3), top confusions (Table 4)."""
    y, pred = np.asarray(y), np.asarray(pred)
    per_class, confusion = {}, {}
    for k, c in enumerate(classes):
        m = y == k
        if m.any():
            per_class[c] = float((pred[m] == k).mean())
    partner = {}
    for a, b in pairs:
        partner[a], partner[b] = b, a
    sym_ids = [classes.index(c) for c in partner if c in classes]
    sym = np.isin(y, sym_ids)
    other = ~sym
    pair_conf = []
    for c in partner:
        if c not in classes:
            continue
        k = classes.index(c)
        m = y == k
        if not m.any():
            continue
        wrong = pred[m][pred[m] != k]
        top, share = None, 0.0
        if len(wrong):
            vals, counts = np.unique(wrong, return_counts=True)
            j = int(np.argmax(counts))
            top, share = classes[int(vals[j])], float(counts[j] / m.sum())
        to_partner = float((pred[m] == classes.index(partner[c])).mean())
        confusion[c] = {"n": int(m.sum()), "accuracy": float((pred[m] == k).mean()),
                        "most_confused_with": top, "rate": share, "partner": partner[c], "to_partner": to_partner}
        pair_conf.append((int(m.sum()), to_partner))
    n_sym = int(sym.sum())
    return {
        "n": int(len(y)),
        "accuracy": float((pred == y).mean()) if len(y) else None,
        "per_class": per_class,
        "symmetric": {"n": n_sym, "accuracy": float((pred[sym] == y[sym]).mean()) if n_sym else None,
                      "to_partner": (sum(n * r for n, r in pair_conf) / n_sym) if n_sym else None},
        "other": {"n": int(other.sum()), "accuracy": float((pred[other] == y[other]).mean()) if other.any() else None},
        "confusions": confusion,
    }


def evaluate_orders(cfg: ProbeConfig, model: torch.nn.Module, tokens_for_order, y: np.ndarray,
                    classes: list[str], pairs: list[list[str]]) -> dict[str, dict]:
    """One report per test-time order; `tokens_for_order(order)` gives that order's input.

    Each corrupted order also gets `vs_correct`: the paired McNemar test against the correct order
    (`lost` = clips right in order and wrong corrupted, `gained` the reverse, exact two-sided p).
    """
    preds = {o: predict(model, tokens_for_order(o)) for o in cfg.orders}
    out = {o: classification_report(y, p, classes, pairs) for o, p in preds.items()}
    if "correct" in preds:
        ok = preds["correct"] == np.asarray(y)
        for o in preds:
            if o != "correct":
                hit = preds[o] == np.asarray(y)
                lost, gained = int((ok & ~hit).sum()), int((~ok & hit).sum())
                out[o]["vs_correct"] = {"lost": lost, "gained": gained, "p": mcnemar_exact(lost, gained)}
    return out


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value for `b` vs `c` discordant pairs (binomial, p = 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return float(min(1.0, 2 * tail))


def backbone_order_fn(x: torch.Tensor, seed: int):
    """Test-time corruption of cached per-frame tokens (frames are encoded independently)."""
    return lambda order: apply_order(x, order, seed)


def markdown_report(cfg: ProbeConfig, result: dict) -> str:
    """A short markdown table set for one probe run."""
    lines = [f"# Probe `{cfg.probe}` on `{cfg.encoder or cfg.backbone}` ({cfg.frames} frames)", "",
             f"data `{cfg.data}`, train `{cfg.train_split}` ({result['n_train']} clips), "
             f"eval `{cfg.eval_split}` ({result['n_eval']} clips), {result['n_params']:,} learnable parameters", "",
             "| order | accuracy | symmetric | other | to partner | vs correct: lost / gained (McNemar p) |",
             "|---|---|---|---|---|---|"]
    for o, r in result["orders"].items():
        vs = r.get("vs_correct")
        test = f"{vs['lost']} / {vs['gained']} ({vs['p']:.2g})" if vs else "-"
        lines.append(f"| {o} | {_pct(r['accuracy'])} | {_pct(r['symmetric']['accuracy'])} | "
                     f"{_pct(r['other']['accuracy'])} | {_pct(r['symmetric']['to_partner'])} | {test} |")
    first = next(iter(result["orders"].values()))
    lines += ["", f"Per class ({next(iter(result['orders']))} order):", "", "| class | accuracy | most confused with |",
              "|---|---|---|"]
    for c, acc in first["per_class"].items():
        conf = first["confusions"].get(c)
        mc = f"{conf['most_confused_with']} ({_pct(conf['rate'])})" if conf and conf["most_confused_with"] else "-"
        lines.append(f"| {c} | {_pct(acc)} | {mc} |")
    return "\n".join(lines) + "\n"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def out_dir(cfg: ProbeConfig) -> Path:
    if cfg.out:
        return Path(cfg.out)
    from configs.runs import new_run_dir

    return new_run_dir("probe", cfg.probe)
