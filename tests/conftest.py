"""Shared fixtures. Offline: the GPT-2 BPE files come from ../shared/tiktoken-cache when it exists."""
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
