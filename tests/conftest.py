"""Shared fixtures. Offline: the GPT-2 BPE files come from ../shared/tiktoken-cache when it exists."""
import json
import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
if "TIKTOKEN_CACHE_DIR" not in os.environ and (SHARED / "tiktoken-cache").exists():
    os.environ["TIKTOKEN_CACHE_DIR"] = str(SHARED / "tiktoken-cache")

# Validation files of the reference implementation (Deng et al., MIT: see the LICENSE beside them), shipped
# with the tests so that a fresh clone needs nothing outside the repository.
REFERENCE = Path(__file__).resolve().parent / "fixtures" / "reference-data"


@pytest.fixture(scope="session")
def mult3x3(tmp_path_factory):
    """A small generated 3x3 dataset folder."""
    import data
    folder = tmp_path_factory.mktemp("data") / "mult3x3"
    data.generate_multiplication("mult3x3", folder, {"train": 2000, "val": 100, "test": 100}, seed=0)
    return folder


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """A data root with mult2x2 (3,200 training problems) and mult3x3 (640) for short training runs."""
    import data
    root = tmp_path_factory.mktemp("data")
    data.generate_multiplication("mult2x2", root / "mult2x2", {"train": 3200, "val": 100, "test": 200},
                                 seed=0)
    data.generate_multiplication("mult3x3", root / "mult3x3", {"train": 640, "val": 50, "test": 50}, seed=0)
    return root


def write_safetensors(path, tensors):
    """A safetensors file written by hand (float32): u64 header length, JSON header, little-endian data."""
    header, payload = {}, b""
    for name, tensor in tensors.items():
        raw = tensor.detach().float().contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensor.shape),
                        "data_offsets": [len(payload), len(payload) + len(raw)]}
        payload += raw
    text = json.dumps(header).encode()
    Path(path).write_bytes(len(text).to_bytes(8, "little") + text + payload)


def gpt2_tensors(model):
    """A model.py GPT's weights under Hugging Face GPT-2's names: the tied head stored as transformer.wte."""
    tensors = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    return {"transformer.wte.weight": model.lm_head.weight.t().contiguous(), **tensors}
