"""Masked Action Modeling (instraction.txt Sec. 4.3, Eq. 8-9).

A small multimodal text decoder: per layer, causal self-attention over the caption tokens, then
cross-attention to the visual action tokens S (Eq. 8), then a feed-forward layer. The input is the
caption with its verb words replaced by `[MASK]`; the loss is the auto-regressive cross-entropy of
Eq. 9 against the *original* caption, `-sum_t log P(y_{t+1} | h_{1:t}, S)`, so the masked verbs
can only be recovered from the video (and the context before them). `verb_accuracy` reports how
often the decoder's prediction at a masked position is the true verb word.

Tokenisation is by words (the atomic world's captions use a closed vocabulary); `WordVocab` is built
from the training captions and maps unknown words to `[UNK]`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PAD, BOS, EOS, MASK, UNK = "[PAD]", "[BOS]", "[EOS]", "[MASK]", "[UNK]"


class WordVocab:
    """Whitespace/punctuation word vocabulary with the special tokens first (PAD = 0)."""

    def __init__(self, texts: list[str]):
        words = sorted({w for t in texts for w in self.split(t)})
        self.itos = [PAD, BOS, EOS, MASK, UNK] + words
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @staticmethod
    def split(text: str) -> list[str]:
        return text.lower().replace(",", " ,").split()

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, mask_words: set[str] = frozenset(), max_len: int = 48) -> tuple[list[int], list[int]]:
        """(input ids with BOS and masked words, target ids with EOS), both of the same length."""
        words = self.split(text)[: max_len - 1]
        tgt = [self.stoi.get(w, self.stoi[UNK]) for w in words] + [self.stoi[EOS]]
        inp = [self.stoi[BOS]] + [self.stoi[MASK] if w in mask_words else self.stoi.get(w, self.stoi[UNK])
                                  for w in words]
        return inp, tgt

    def batch(self, texts: list[str], mask_words: set[str] = frozenset(),
              max_len: int = 48) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`(inputs (B, L), targets (B, L), masked (B, L) bool)`; targets are PAD (0) beyond each caption.

        `masked[b, t]` marks targets whose *input* word at the same step was masked (the verb to recover).
        """
        pairs = [self.encode(t, mask_words, max_len) for t in texts]
        n = max(len(p[0]) for p in pairs)
        inp = torch.zeros(len(texts), n, dtype=torch.long)
        tgt = torch.zeros(len(texts), n, dtype=torch.long)
        for b, (i, t) in enumerate(pairs):
            inp[b, : len(i)] = torch.tensor(i)
            tgt[b, : len(t)] = torch.tensor(t)
        masked = torch.zeros_like(tgt, dtype=torch.bool)
        masked[:, :-1] = inp[:, 1:] == self.stoi[MASK]  # target y_{t+1} is the word whose input was masked
        return inp, tgt, masked


class DecoderLayer(nn.Module):
    """Eq. 8: h = CrossAttn(SelfAttn_causal(h), S), each pre-LN with a residual, then FF."""

    def __init__(self, dim: int, heads: int, mlp: int = 2):
        super().__init__()
        self.n1, self.n2, self.n3, self.nkv = (nn.LayerNorm(dim) for _ in range(4))
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(dim, mlp * dim), nn.GELU(), nn.Linear(mlp * dim, dim))

    def forward(self, h: torch.Tensor, s: torch.Tensor, causal: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        x = self.n1(h)
        h = h + self.self_attn(x, x, x, attn_mask=causal, key_padding_mask=pad, need_weights=False)[0]
        kv = self.nkv(s)
        h = h + self.cross_attn(self.n2(h), kv, kv, need_weights=False)[0]
        return h + self.ff(self.n3(h))


class MaskedActionDecoder(nn.Module):
    """Caption ids `(B, L)` + action tokens S `(B, K, C)` -> next-word logits `(B, L, V)`."""

    def __init__(self, vocab_size: int, dim: int = 128, heads: int = 4, layers: int = 2, max_len: int = 64):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.pos = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        self.layers = nn.ModuleList([DecoderLayer(dim, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, vocab_size)
        self.max_len = max_len

    def forward(self, ids: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        n = ids.shape[1]
        if n > self.max_len:
            raise ValueError(f"MaskedActionDecoder: caption of {n} tokens > max_len={self.max_len}")
        h = self.embed(ids) + self.pos[:n]
        causal = torch.triu(torch.ones(n, n, dtype=torch.bool, device=ids.device), diagonal=1)
        pad = ids == 0
        for layer in self.layers:
            h = layer(h, s, causal, pad)
        return self.out(self.norm(h))


def mam_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Eq. 9: mean over non-PAD steps of `-log P(y_{t+1} | h_{1:t}, S)`."""
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=0)


@torch.no_grad()
def verb_accuracy(logits: torch.Tensor, targets: torch.Tensor, masked: torch.Tensor) -> float:
    """Share of masked verb words predicted exactly (argmax)."""
    if not masked.any():
        return float("nan")
    return float((logits.argmax(-1)[masked] == targets[masked]).float().mean())
