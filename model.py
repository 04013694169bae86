"""
GPT-2 in one file, in the shape of nanoGPT and with its interface (a superset: GPTConfig with bias,
forward(idx, targets) with nanoGPT's targets, configure_optimizers, estimate_mfu, crop_block_size,
get_num_params, from_pretrained(model_type, override_args), generate(idx, max_new_tokens, temperature,
top_k)), with its own loader for the official weights and the paper's released checkpoints (no transformers
library), an optional compact vocabulary for small models trained from scratch, position ids, and decoding
with a key/value cache. It imports nothing from this project (torch and numpy only): copy it alone.

Module names and weight layouts equal Hugging Face's GPT2LMHeadModel ('transformer.h.0.attn.c_attn.weight',
stored (in, out) like GPT-2's own Conv1D), so a checkpoint maps onto this model by name. One exception: the
tied token embedding is kept as the head's (n_embd, vocab) matrix, the layout batch-1 decoding reads fastest.
"""
import json
import math
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F

GPT2_VOCAB = 50257
EOT = 50256                          # GPT-2's <|endoftext|>: the separator of input, CoT and output
IGNORE = -100                        # the label of positions without a loss (F.cross_entropy's ignore_index)
ACTIVATIONS = {"gelu_tanh": "tanh", "gelu": "none"}   # name -> F.gelu's `approximate`
PRESETS = {                          # n_layer, n_head, n_embd of OpenAI's four GPT-2 sizes
    "gpt2": (12, 12, 768), "gpt2-medium": (24, 16, 1024),
    "gpt2-large": (36, 20, 1280), "gpt2-xl": (48, 25, 1600),
}


@dataclass
class GPTConfig:
    block_size: int = 1024           # longest sequence (rows of the position table)
    vocab_size: int = GPT2_VOCAB
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True                # biases in the linear layers and LayerNorms (GPT-2: yes; nanoGPT: no)
    activation: str = "gelu_tanh"    # GPT-2's gelu_new; or "gelu" (erf), a faster step on a CPU
    vocab_ids: list = None           # compact vocabulary: the GPT-2 ids this model knows (from meta.json)

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}, expected one of {list(ACTIVATIONS)}")
        if self.vocab_ids is not None:
            self.vocab_ids = sorted(set(int(i) for i in self.vocab_ids) | {EOT})
            self.vocab_size = len(self.vocab_ids)


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and the problem."""


PEAK_BF16 = {"A100": 312e12, "H100 SXM": 989e12, "H100 PCIe": 756e12, "H100 NVL": 835e12, "H200": 989e12}
DEVICE_NAMES = {"NVIDIA A100-SXM4-80GB": "A100", "NVIDIA A100-SXM4-40GB": "A100",
                "NVIDIA A100-PCIE-40GB": "A100", "NVIDIA A100 80GB PCIe": "A100",
                "NVIDIA H100 80GB HBM3": "H100 SXM", "NVIDIA H100 PCIe": "H100 PCIe",
                "NVIDIA H100 NVL": "H100 NVL", "NVIDIA H200": "H200"}


def peak_flops(device_name):
    """Dense bf16 FLOP/s of a GPU by its exact torch.cuda.get_device_name(); None for one not in the table."""
    return PEAK_BF16.get(DEVICE_NAMES.get(device_name))


def pick(logits, temperature=1.0, top_k=None):
    """The next token's row: the argmax at temperature 0; else a sample from softmax(logits / temperature),
    among the top_k rows only if top_k is given (nanoGPT's sampling)."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
        logits = logits.masked_fill(logits < kth, -float("inf"))
    return torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)[:, 0]


class KVCache:
    """Keys and values of every layer for B sequences of up to max_len tokens, allocated once."""

    def __init__(self, config, batch, max_len, device, dtype):
        head_size = config.n_embd // config.n_head
        self.kv = torch.empty(config.n_layer, 2, batch, config.n_head, max_len, head_size, device=device,
                              dtype=dtype)
        self.length = 0              # tokens already cached

    def update(self, layer, k, v):
        end = self.length + k.size(2)
        self.kv[layer, 0, :, :, self.length:end] = k
        self.kv[layer, 1, :, :, self.length:end] = v
        return self.kv[layer, 0, :, :, :end], self.kv[layer, 1, :, :, :end]


def linear(x, weight, bias=None):
    """x @ weight + bias, weight stored (in, out). On a CPU a single row (batch-1 decoding) is memory-bound,
    and MKL streams the weight on one core then: split the input dimension in two halves and let a batched
    product read them on two cores (README, "Model speed on a CPU").
    A GPU takes the plain product."""
    n_in, n_out = weight.shape
    rows = x.reshape(-1, n_in)
    if rows.shape[0] == 1 and n_in % 2 == 0 and x.device.type == "cpu":
        y = torch.bmm(rows.view(2, 1, n_in // 2), weight.view(2, n_in // 2, n_out)).sum(0)
        y = y if bias is None else y + bias
    else:
        y = rows @ weight if bias is None else torch.addmm(bias, rows, weight)
    return y.view(*x.shape[:-1], n_out)


class Conv1D(nn.Module):
    """GPT-2's linear layer: weight (in, out), as in the official checkpoints."""

    def __init__(self, n_in, n_out, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out)) if bias else None

    def forward(self, x):
        return linear(x, self.weight, self.bias)


class CausalSelfAttention(nn.Module):
    def __init__(self, config, layer):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = Conv1D(config.n_embd, 3 * config.n_embd, config.bias)
        self.c_proj = Conv1D(config.n_embd, config.n_embd, config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.dropout, self.layer = config.n_head, config.dropout, layer

    def forward(self, x, cache=None):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if cache is not None:
            k, v = cache.update(self.layer, k, v)
        # Causal mask in training and for a prompt into an empty cache; one new token sees everything. (A
        # plain bool: under torch.compile with the length dynamic, `T > 1` would be a symbolic one.)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=cache is None or T > 1)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = Conv1D(config.n_embd, 4 * config.n_embd, config.bias)
        self.c_proj = Conv1D(4 * config.n_embd, config.n_embd, config.bias)
        self.dropout = nn.Dropout(config.dropout)
        self.approximate = ACTIVATIONS[config.activation]

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate=self.approximate)))


class Block(nn.Module):
    def __init__(self, config, layer):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=1e-5, bias=config.bias)
        self.attn = CausalSelfAttention(config, layer)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=1e-5, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, cache=None):
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, eps=1e-5, bias=config.bias),
        ))
        self.lm_head = Conv1D(config.n_embd, config.vocab_size, bias=False)   # tied: its transpose is wte
        if config.vocab_ids is not None:                              # compact vocabulary: GPT-2 id <-> row
            ids = torch.tensor(config.vocab_ids)
            index = torch.full((GPT2_VOCAB,), -1, dtype=torch.long)
            index[ids] = torch.arange(len(ids))
            self.register_buffer("vocab_ids", ids, persistent=False)
            self.register_buffer("id_to_index", index, persistent=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():                       # GPT-2: scale residual projections
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, (Conv1D, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def get_num_params(self, non_embedding=True):
        """Parameters, as nanoGPT counts them: without the position table unless non_embedding=False (the
        token embedding is the head's weight, so it counts)."""
        positions = self.transformer.wpe.weight.numel() if non_embedding else 0
        return sum(p.numel() for p in self.parameters()) - positions

    def crop_block_size(self, block_size):
        """Fewer positions (nanoGPT's model surgery): keep the first block_size rows of the position table."""
        assert block_size <= self.config.block_size
        self.config.block_size = block_size
        self.transformer.wpe.weight = nn.Parameter(self.transformer.wpe.weight[:block_size])

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
        """nanoGPT's AdamW: weight decay on the matrices and embeddings only, fused on CUDA. (train.py uses
        the reference's AdamW instead: weight decay on every parameter.)"""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, fused=device_type == "cuda")

    def estimate_mfu(self, fwdbwd_per_iter, dt):
        """nanoGPT's model FLOPs utilization: (6N + 12 L H Q T) FLOPs a token (PaLM, Appendix B) over
        block_size tokens a sequence, against the bf16 dense peak of the GPU this runs on (peak_flops); where
        that GPU is not in the table, against an A100's, as nanoGPT does."""
        c = self.config
        L, H, Q, T = c.n_layer, c.n_head, c.n_embd // c.n_head, c.block_size
        flops_per_token = 6 * self.get_num_params() + 12 * L * H * Q * T
        device = next(self.parameters()).device
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
        peak = peak_flops(name) or PEAK_BF16["A100"]
        return flops_per_token * c.block_size * fwdbwd_per_iter / dt / peak

    def to_index(self, ids):
        """GPT-2 token ids -> embedding rows (the identity for the full vocabulary); IGNORE stays IGNORE. An
        id outside a compact vocabulary maps to -1: check_inputs catches those where the batch is built."""
        if self.config.vocab_ids is None:
            return ids
        return torch.where(ids == IGNORE, IGNORE, self.id_to_index[ids.clamp(min=0)])

    def to_id(self, index):
        """Embedding rows -> GPT-2 token ids."""
        return index if self.config.vocab_ids is None else self.vocab_ids[index]

    def check_inputs(self, idx, position_ids=None):
        """What forward cannot check without stalling a GPU: ids in this model's vocabulary, positions within
        block_size. Call it on the host, on the numpy arrays a batch is built from."""
        ids = np.asarray(idx)
        known = np.isin(ids, self.config.vocab_ids) if self.config.vocab_ids is not None else \
            (ids >= 0) & (ids < self.config.vocab_size)
        if not known.all():
            raise ValueError(f"token id {ids[~known][0]} is not in this model's vocabulary")
        longest = ids.shape[1] if position_ids is None else int(np.max(position_ids)) + 1
        if longest > self.config.block_size:
            raise ValueError(f"position {longest - 1} is beyond block_size {self.config.block_size}")

    def forward(self, idx, targets=None, position_ids=None, cache=None):
        """
        nanoGPT's interface: idx (B, T) token ids; targets (B, T) with targets[t] the token that follows
        idx[t] (nanoGPT's meaning: already shifted; a negative target, nanoGPT's -1 or IGNORE, has no loss).
        Returns the logits (B, T, vocab) and their mean cross-entropy (None without targets); with a KV cache
        (decoding), the logits of the last position only, (B, 1, vocab).
        """
        x = self.transformer.ln_f(self.hidden_states(idx, position_ids, cache)[-1])
        logits = self.lm_head(x if cache is None else x[:, -1:])
        if targets is None:
            return logits, None
        rows = torch.where(targets < 0, IGNORE, self.to_index(targets.clamp(min=0)))
        return logits, F.cross_entropy(logits.flatten(0, 1).float(), rows.flatten(), ignore_index=IGNORE)

    def hidden_states(self, idx, position_ids=None, cache=None):
        """The residual stream after the embedding and after each block: a list of n_layer + 1 (B, T, n_embd),
        what the logit lens (and train.py's training forward) reads."""
        states = [self.embed(idx, position_ids, cache)]
        for block in self.transformer.h:
            states.append(block(states[-1], cache))
        if cache is not None:
            cache.length += idx.size(1)
        return states

    def embed(self, idx, position_ids=None, cache=None):
        """Token plus position embeddings: the residual stream before the first block."""
        T = idx.size(1)
        if position_ids is None:
            start = cache.length if cache is not None else 0
            position_ids = torch.arange(start, start + T, device=idx.device)
        wte = self.lm_head.weight.t()                                  # (vocab, n_embd) token embedding
        x = F.embedding(self.to_index(idx), wte) + self.transformer.wpe(position_ids)
        return self.transformer.drop(x)

    @torch.no_grad()
    def residual_stream(self, idx):
        """The residual stream after the embedding and after each block: (n_layer + 1, B, T, n_embd). Read
        through ln_f and lm_head it is the logit lens (what eval.py --lens does)."""
        return torch.stack(self.hidden_states(idx))

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, position_ids=None,
                 stop_after_separators=None):
        """
        nanoGPT's sampling (temperature, top_k), or greedy decoding at temperature=0, with a KV cache. idx:
        (B, T) prompts of equal length. With stop_after_separators=N (eval.py: 2, CoT end and answer end) a
        sequence stops once it has emitted N separators, and finished rows are padded with separators. Returns
        (B, T + new).
        """
        B, T = idx.size()
        if position_ids is None:
            position_ids = torch.arange(T, device=idx.device).expand(B, T)
        max_new_tokens = min(max_new_tokens, self.config.block_size - int(position_ids.max()) - 1)
        dtype = next(self.parameters()).dtype
        cache = KVCache(self.config, B, T + max_new_tokens, idx.device, dtype)
        logits, _ = self(idx, position_ids=position_ids, cache=cache)
        next_position = position_ids[:, -1:] + 1
        separators_left = torch.full((B,), stop_after_separators or max_new_tokens + 1, device=idx.device)
        out = [idx]
        for step in range(max_new_tokens):
            token = self.to_id(pick(logits[:, -1], temperature, top_k))
            token = torch.where(separators_left > 0, token, EOT)
            separators_left -= (token == EOT).long()
            out.append(token[:, None])
            if step == max_new_tokens - 1 or (separators_left <= 0).all():
                break
            logits, _ = self(token[:, None], position_ids=next_position, cache=cache)
            next_position = next_position + 1
        return torch.cat(out, dim=1)

    def extend_positions(self, block_size):
        """Grow the position table; new rows copy the last trained row (as the reference does past 1024)."""
        old = self.transformer.wpe.weight.data
        if block_size <= len(old):
            return
        new = torch.cat([old, old[-1:].expand(block_size - len(old), -1)])
        self.transformer.wpe = nn.Embedding.from_pretrained(new.clone(), freeze=False)
        self.config.block_size = block_size

    @classmethod
    def from_pretrained(cls, model_type, override_args=None):
        """'gpt2' ... 'gpt2-xl' (downloaded once into a cache folder), a Hugging Face GPT-2 folder, or the
        paper's released folder (state_dict.bin, keys prefixed 'base_model.'); override_args may set the
        dropout, as in nanoGPT. Returns the model in eval mode."""
        unknown = set(override_args or {}) - {"dropout"}
        if unknown:
            raise CheckpointError(f"from_pretrained: only the dropout can be overridden, not "
                                  f"{sorted(unknown)}")
        dropout = (override_args or {}).get("dropout", 0.0)
        path = Path(model_type)
        if not path.exists():
            if model_type not in PRESETS:
                raise CheckpointError(f"{model_type}: no such file or folder, and not one of {list(PRESETS)}")
            path = download(model_type)
        names = ("model.safetensors", "pytorch_model.bin", "state_dict.bin")
        file = path if path.is_file() else next((path / f for f in names if (path / f).exists()), None)
        if file is None:
            raise CheckpointError(f"{path}: no {', '.join(names[:2])} or {names[2]} in this folder")
        hf_config = read_config(file.parent / "config.json")
        tensors = gpt2_tensors(read_tensors(file), file)
        config = config_from_tensors(tensors, hf_config, file, dropout)
        model = cls(config)
        model.load_gpt2_tensors(tensors, file)
        return model.eval()

    def load_gpt2_tensors(self, tensors, file):
        """Copy name-normalized GPT-2 tensors in (wte becomes the tied head); strict on names and shapes."""
        tensors = dict(tensors)
        if "transformer.wte.weight" in tensors:
            tensors["lm_head.weight"] = tensors.pop("transformer.wte.weight").t()
        params = dict(self.named_parameters())
        missing = sorted(set(params) - set(tensors))
        unexpected = sorted(set(tensors) - set(params))
        if missing or unexpected:
            raise CheckpointError(f"{file}: missing tensors {missing[:3]}, unexpected tensors "
                                  f"{unexpected[:3]}")
        with torch.no_grad():
            for name, p in params.items():
                t = tensors[name]
                if t.shape != p.shape:
                    raise CheckpointError(f"{file}: tensor {name} has shape {tuple(t.shape)}, the model "
                                          f"needs {tuple(p.shape)}")
                p.copy_(t)


# ----------------------------------------------------------------------------- checkpoint files

SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
                      "BF16": torch.bfloat16}
MAX_HEADER = 100 * 2 ** 20


def read_safetensors(file):
    """safetensors by hand: u64 little-endian header length, JSON header {name: {dtype, shape,
    data_offsets}}, then raw little-endian data. Everything is checked against the file before reading."""
    size = file.stat().st_size
    with open(file, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"{file}: shorter than the 8-byte header length")
        n = int.from_bytes(prefix, "little")
        if n > size - 8 or n > MAX_HEADER:
            raise CheckpointError(f"{file}: header length {n} is larger than the file ({size} bytes) allows")
        try:
            header = json.loads(f.read(n))
        except (ValueError, RecursionError) as e:
            raise CheckpointError(f"{file}: header is not JSON ({type(e).__name__})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{file}: header is not a JSON object")
    data_size = size - 8 - n
    data = np.memmap(file, np.uint8, "r", offset=8 + n) if data_size else np.zeros(0, np.uint8)
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__" or unused(name):                    # e.g. a U8/BOOL attn.bias mask
            continue
        if not isinstance(info, dict) or str(info.get("dtype")) not in SAFETENSORS_DTYPES:
            raise CheckpointError(f"{file}: tensor {name!r} has an unknown dtype")
        shape, offsets = info.get("shape"), info.get("data_offsets")
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
            raise CheckpointError(f"{file}: tensor {name!r} has a malformed shape")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= data_size):
            raise CheckpointError(f"{file}: tensor {name!r} has data offsets outside the file")
        dtype = SAFETENSORS_DTYPES[info["dtype"]]
        if offsets[1] - offsets[0] != math.prod(shape) * dtype.itemsize:
            raise CheckpointError(f"{file}: tensor {name!r} has {offsets[1] - offsets[0]} bytes, its shape "
                                  f"needs {math.prod(shape) * dtype.itemsize}")
        raw = torch.from_numpy(np.array(data[offsets[0]:offsets[1]]))
        tensors[name] = raw.view(dtype).reshape(shape)
    return tensors


def load_plain(file, what="loadable PyTorch checkpoint"):
    """A PyTorch pickle read with weights_only=True: tensors and plain containers, or one clear error saying
    the file is not `what` (without torch's advice to load the file unsafely)."""
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:                                            # any unreadable pickle or zip
        if "Unsupported global" in str(e):                            # it would build objects or run code
            raise CheckpointError(f"{file}: refused, not a plain checkpoint: it holds objects other than "
                                  f"tensors and plain containers") from None
        text = "an unreadable pickle" if "Weights only load failed" in str(e) else str(e).strip()
        reason = " ".join(line.strip() for line in text.splitlines()[:2])[:300] or type(e).__name__
        raise CheckpointError(f"{file}: not a {what} ({reason})") from None


def read_tensors(file):
    """{name: tensor} from a .safetensors file or a PyTorch pickle (load_plain)."""
    if file.suffix == ".safetensors":
        return read_safetensors(file)
    tensors = load_plain(file)
    if not isinstance(tensors, dict) or not all(isinstance(t, torch.Tensor) for t in tensors.values()):
        raise CheckpointError(f"{file}: expected a dict of tensors")
    return tensors


def unused(name):
    """What GPT-2 exports store that this model does not load: the attention-mask buffers, the tied head."""
    return name.endswith((".attn.bias", ".attn.masked_bias")) or name.endswith("lm_head.weight")


def read_config(file):
    """A Hugging Face config.json as a dict ({} when there is none)."""
    if not file.exists():
        return {}
    try:
        config = json.loads(file.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{file}: not valid JSON ({type(e).__name__}: {str(e)[:100]})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{file}: not a JSON object")
    return config


def gpt2_tensors(tensors, file):
    """Normalize names: drop 'base_model.' (the paper's checkpoints) and 'transformer.' prefixes and what
    is unused; then prefix 'transformer.' as this model names them."""
    out = {}
    for name, t in tensors.items():
        name = name.removeprefix("base_model.").removeprefix("transformer.")
        if unused(name):
            continue
        out["transformer." + name] = t.float()
    if "transformer.wte.weight" not in out or "transformer.wpe.weight" not in out:
        raise CheckpointError(f"{file}: missing tensors ['transformer.wte.weight', 'transformer.wpe.weight']")
    return out


def config_from_tensors(tensors, hf_config, file, dropout):
    """Sizes come from the tensors; n_head from config.json, else from the GPT-2 preset of that width."""
    vocab_size, n_embd = tensors["transformer.wte.weight"].shape
    block_size = tensors["transformer.wpe.weight"].shape[0]
    n_layer = len({name.split(".")[2] for name in tensors if name.startswith("transformer.h.")})
    n_head = hf_config.get("n_head") or {e: h for _, h, e in PRESETS.values()}.get(n_embd)
    if n_head is not None and (type(n_head) is not int or n_head < 1):
        raise CheckpointError(f"{file}: config.json's n_head must be a whole number >= 1, got {n_head!r}")
    if n_head is None:
        raise CheckpointError(f"{file}: cannot tell n_head for width {n_embd}: add a config.json with n_head")
    for key, value in (("n_layer", n_layer), ("n_embd", n_embd), ("vocab_size", vocab_size),
                       ("n_positions", block_size)):
        if key in hf_config and hf_config[key] != value:
            raise CheckpointError(f"{file}: config.json says {key}={hf_config[key]}, the tensors have "
                                  f"{value}")
    if n_embd % n_head:
        raise CheckpointError(f"{file}: width {n_embd} is not divisible by n_head {n_head}")
    return GPTConfig(block_size=block_size, vocab_size=vocab_size, n_layer=n_layer, n_head=n_head,
                     n_embd=n_embd, dropout=dropout)


def download(name):
    """Fetch OpenAI's GPT-2 weights once (standard library only) into ~/.cache/icot-si/NAME (or
    $ICOT_CACHE/NAME), from huggingface.co or the mirror in $ICOT_HUB, with a progress line on stderr."""
    folder = Path(os.environ.get("ICOT_CACHE", Path.home() / ".cache" / "icot-si")) / name
    hub = os.environ.get("ICOT_HUB", "https://huggingface.co").rstrip("/")
    folder.mkdir(parents=True, exist_ok=True)
    for file in ("config.json", "model.safetensors"):
        target = folder / file
        if target.exists():
            continue
        url = f"{hub}/openai-community/{name}/resolve/main/{file}"
        tmp = target.with_name(file + ".part")
        try:
            urllib.request.urlretrieve(url, tmp, reporthook=Progress(f"downloading {url}"))
            os.replace(tmp, target)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            http = isinstance(e, urllib.error.HTTPError)
            reason = f"HTTP {e.code} {e.reason}" if http else getattr(e, "reason", e)
            raise CheckpointError(f"cannot download {url} ({reason}); without a network, place config.json "
                                  f"and model.safetensors of {name} in {folder}") from None
    return folder


class Progress:
    """urlretrieve's report hook: one line on stderr, rewritten in place as the megabytes arrive."""

    def __init__(self, what):
        self.what, self.shown = what, -1

    def __call__(self, blocks, block_size, total):
        done = min(blocks * block_size, total) if total > 0 else blocks * block_size
        if done // 2 ** 20 != self.shown or done == total:
            self.shown = done // 2 ** 20
            of = f" of {total / 2 ** 20:.1f}" if total > 0 else ""
            print(f"\r{self.what}: {done / 2 ** 20:.1f}{of} MB", end="\n" if done == total else "",
                  file=sys.stderr, flush=True)
