import http.server
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

import model as model_module
from model import EOT, GPT, GPTConfig, CheckpointError, linear

from conftest import gpt2_tensors, write_safetensors

try:                                 # only the parity checks against GPT2LMHeadModel need transformers
    import transformers
except ImportError:
    transformers = None
parity = pytest.mark.skipif(transformers is None, reason="the parity checks need transformers")


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory):
    """A random small GPT-2 folder in Hugging Face's layout, written without transformers: st/ holds
    model.safetensors, bin/ pytorch_model.bin, each with config.json. Returns the model that wrote it, its
    tensors by Hugging Face's names, and the folder."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=64, n_layer=2, n_head=4, n_embd=32)).eval()
    tensors = gpt2_tensors(model)
    folder = tmp_path_factory.mktemp("gpt2")
    config = json.dumps({"n_layer": 2, "n_head": 4, "n_embd": 32, "n_positions": 64, "vocab_size": 50257})
    for kind in ("st", "bin"):
        (folder / kind).mkdir()
        (folder / kind / "config.json").write_text(config)
    write_safetensors(folder / "st" / "model.safetensors", tensors)
    torch.save(tensors, folder / "bin" / "pytorch_model.bin")
    return model, tensors, folder


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A random GPT-2 written by transformers' save_pretrained (safetensors), plus the same weights as a
    pytorch_model.bin (what save_pretrained(safe_serialization=False) writes in transformers 4.x)."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=32, n_positions=64)
    hf = transformers.GPT2LMHeadModel(config).eval()
    folder = tmp_path_factory.mktemp("hf")
    hf.save_pretrained(folder / "st")
    (folder / "bin").mkdir()
    (folder / "bin" / "config.json").write_text((folder / "st" / "config.json").read_text())
    torch.save(hf.state_dict(), folder / "bin" / "pytorch_model.bin")
    return hf, folder


@parity
@pytest.mark.parametrize("kind", ["st", "bin"])
def test_logits_equal_transformers(hf_folder, kind):
    hf, folder = hf_folder
    ours = GPT.from_pretrained(folder / kind)
    assert not ours.training
    idx = torch.randint(0, 50257, (3, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference, (logits, _) = hf(idx).logits, ours(idx)
    assert logits.shape == (3, 40, 50257)
    assert (logits - reference).abs().max().item() < 1e-4


@parity
def test_released_state_dict_layout(hf_folder, tmp_path):
    """The paper's checkpoints: state_dict.bin with keys prefixed 'base_model.' (its config.json is not
    GPT-2's; a GPT-2 width implies n_head, this odd test width needs it given)."""
    hf, _ = hf_folder
    torch.save({"base_model." + k: v for k, v in hf.state_dict().items()}, tmp_path / "state_dict.bin")
    (tmp_path / "config.json").write_text('{"base_model": "gpt2", "n_head": 4}')
    ours = GPT.from_pretrained(tmp_path)
    idx = torch.randint(0, 50257, (2, 10))
    with torch.no_grad():
        assert (ours(idx)[0] - hf(idx).logits).abs().max().item() < 1e-4


@parity
def test_position_ids_and_extension(hf_folder):
    hf, folder = hf_folder
    ours = GPT.from_pretrained(folder / "st")
    idx = torch.randint(0, 50257, (1, 6))
    positions = torch.tensor([[0, 1, 5, 6, 7, 8]])
    with torch.no_grad():
        assert (ours(idx, position_ids=positions)[0] - hf(idx,
                                                          position_ids=positions).logits).abs().max() < 1e-4
    last = ours.transformer.wpe.weight[-1].clone()
    ours.extend_positions(100)
    assert ours.transformer.wpe.weight.shape[0] == 100 and torch.equal(ours.transformer.wpe.weight[99], last)
    with torch.no_grad():
        ours(torch.zeros(1, 90, dtype=torch.long))


def test_forward_has_nanogpts_interface_logits_of_every_position_and_the_loss_of_the_targeted_ones():
    """targets[t] is the token after idx[t], nanoGPT's meaning; -1 (nanoGPT) and -100 (IGNORE): no loss."""
    torch.manual_seed(0)
    m = GPT(GPTConfig(block_size=16, n_layer=1, n_head=2, n_embd=16, vocab_ids=list(range(20)) + [EOT]))
    idx = torch.tensor([[1, 2, EOT, 5, 6, EOT, 7, EOT]])
    targets = torch.tensor([[-100, -1, 5, 6, EOT, 7, EOT, -100]])
    logits, loss = m(idx, targets)
    assert logits.shape == (1, 8, m.config.vocab_size)                  # (B, T, vocab), as nanoGPT
    full, none = m(idx)
    assert none is None and torch.equal(full, logits)
    rows = m.to_index(targets[0, 2:7])
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(full[0, 2:7], rows), atol=1e-6)


def test_one_row_product_equals_plain_matmul():
    torch.manual_seed(0)
    weight, bias = torch.randn(64, 40), torch.randn(40)
    for x in (torch.randn(1, 1, 64), torch.randn(3, 5, 64)):           # split path, batched path
        assert torch.allclose(linear(x, weight, bias), x @ weight + bias, atol=1e-5)
        assert torch.allclose(linear(x, weight), x @ weight, atol=1e-5)


def test_compact_vocabulary_round_trip():
    ids = [220, 352, 1303, 21017]
    m = GPT(GPTConfig(block_size=8, n_layer=1, n_head=1, n_embd=8, vocab_ids=ids))
    assert m.config.vocab_ids == sorted(ids + [EOT]) and m.config.vocab_size == 5
    assert m.lm_head.weight.shape == (8, 5)                        # tied head: (n_embd, vocab)
    tokens = torch.tensor([[21017, 220, EOT, 352]])
    assert torch.equal(m.to_id(m.to_index(tokens)), tokens)
    with pytest.raises(ValueError, match="token id 777 is not in this model's vocabulary"):
        m.check_inputs(torch.tensor([[220, 777]]))                 # where the batch is built: no GPU stall
    with pytest.raises(ValueError, match="position 8 is beyond block_size 8"):
        m.check_inputs(np.array([[220, 352]]), np.array([[0, 8]]))
    m.check_inputs(np.array([[220, 352]]), np.array([[0, 7]]))


def test_activation_choice():
    """gelu_tanh (GPT-2's gelu_new) by default, or the exact erf GELU: each equals its formula."""
    x = torch.randn(50)
    for name, reference in (("gelu_tanh", 0.5 * x * (1 + torch.tanh(0.7978845608 * (x + 0.044715 * x ** 3)))),
                            ("gelu", 0.5 * x * (1 + torch.erf(x / 2 ** 0.5)))):
        mlp = model_module.MLP(GPTConfig(n_embd=50, activation=name))
        with torch.no_grad():
            mlp.c_fc.weight.copy_(torch.eye(50).repeat(1, 4))              # four copies of x, then their mean
            mlp.c_proj.weight.copy_(torch.eye(50).repeat(4, 1) / 4)
        assert torch.allclose(mlp(x), reference, atol=1e-5)
    assert GPTConfig().activation == "gelu_tanh"
    with pytest.raises(ValueError, match="unknown activation 'relu'"):
        GPTConfig(activation="relu")


@pytest.mark.parametrize("compact,batch", [(False, 2), (True, 2), (False, 1)])
def test_kv_cache_decoding_equals_plain_argmax_loop(compact, batch):
    torch.manual_seed(3)
    vocab = list(range(0, 300, 7)) + [EOT] if compact else None
    m = GPT(GPTConfig(block_size=64, n_layer=2, n_head=2, n_embd=16, vocab_ids=vocab)).eval()
    prompts = torch.tensor([vocab[:6], vocab[6:12]]) if compact else torch.randint(0, 50000, (2, 6))
    prompts = prompts[:batch]                                         # batch 1: the split one-row products
    out = m.generate(prompts, 20, temperature=0)
    plain = prompts
    for _ in range(20):
        with torch.no_grad():
            plain = torch.cat([plain, m.to_id(m(plain)[0][:, -1].argmax(-1, keepdim=True))], 1)
    assert torch.equal(out, plain)


def test_generation_stops_after_two_separators():
    m = GPT(GPTConfig(block_size=32, n_layer=1, n_head=1, n_embd=8, vocab_ids=[5, 6])).eval()
    with torch.no_grad():
        m.lm_head.weight.zero_()
        # ln_f output makes this column win or lose
        m.lm_head.weight[0, m.to_index(torch.tensor(EOT))] = 10.0
        m.transformer.ln_f.bias.zero_()
        m.transformer.ln_f.weight.zero_()
        m.transformer.ln_f.bias[0] = 1.0                              # every position predicts the separator
    out = m.generate(torch.tensor([[5, 6, EOT]]), 10, temperature=0, stop_after_separators=2)
    assert out.tolist() == [[5, 6, EOT, EOT, EOT]]


# ----------------------------------------------------------------------------- hostile files

def safetensors_bytes(header, payload=b""):
    raw = json.dumps(header).encode() if isinstance(header, dict) else header
    return len(raw).to_bytes(8, "little") + raw + payload


def corruptions(valid):
    """A few hundred broken variants of a valid safetensors file, each with what it breaks."""
    rng = random.Random(0)
    n = int.from_bytes(valid[:8], "little")
    header, payload = json.loads(valid[8:8 + n]), valid[8 + n:]
    name = next(k for k in header if k != "__metadata__")
    cases = [valid[:cut] for cut in sorted(rng.sample(range(0, 8 + n), 120))]           # truncated header
    cases += [(rng.randrange(n + 1, 2 ** 64)).to_bytes(8, "little") + valid[8:] for _ in range(40)]
    cases += [valid[:8] + bytes(rng.randrange(256) for _ in range(n)) + payload for _ in range(40)]
    for value in ("F7", "I8", None, 3, [1]):
        cases.append(safetensors_bytes({**header, name: {**header[name], "dtype": value}}, payload))
    for shape in ([-1], [1.5], "3", [2 ** 62, 2 ** 62], [10 ** 9], [True]):
        cases.append(safetensors_bytes({**header, name: {**header[name], "shape": shape}}, payload))
    for offsets in ([0, len(payload) + 4], [-4, 8], [8, 4], [0], "0,4", [0, 2 ** 70]):
        cases.append(safetensors_bytes({**header, name: {**header[name], "data_offsets": offsets}}, payload))
    cases += [safetensors_bytes(b"[1, 2]", payload), safetensors_bytes(b"[" * 100000, payload),
              safetensors_bytes(b"\xff\xfe{}", payload), safetensors_bytes({name: "x"}, payload)]
    for _ in range(40):                                                                 # truncated data
        cases.append(valid[:rng.randrange(8 + n + 1, len(valid))])
    return cases


def test_corrupted_safetensors_each_give_a_clear_error(gpt2_folder, tmp_path):
    _, _, folder = gpt2_folder
    valid = (folder / "st" / "model.safetensors").read_bytes()
    cases = corruptions(valid)
    assert len(cases) > 250
    (tmp_path / "config.json").write_text((folder / "st" / "config.json").read_text())
    for i, case in enumerate(cases):
        (tmp_path / "model.safetensors").write_bytes(case)
        with pytest.raises(CheckpointError) as e:
            GPT.from_pretrained(tmp_path)
        assert "model.safetensors" in str(e.value), i


def test_truncated_and_hostile_pickles(gpt2_folder, tmp_path):
    _, _, folder = gpt2_folder
    valid = (folder / "bin" / "pytorch_model.bin").read_bytes()
    for cut in random.Random(1).sample(range(len(valid)), 60):
        (tmp_path / "pytorch_model.bin").write_bytes(valid[:cut])
        with pytest.raises(CheckpointError, match="pytorch_model.bin"):
            GPT.from_pretrained(tmp_path)

    class Exploit:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))
    torch.save({"x": Exploit()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="not a loadable PyTorch checkpoint"):
        GPT.from_pretrained(tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_missing_tensor_and_wrong_shape(gpt2_folder, tmp_path):
    _, tensors, folder = gpt2_folder
    state = dict(tensors)
    config = (folder / "st" / "config.json").read_text()
    (tmp_path / "config.json").write_text(config)
    del state["transformer.h.1.mlp.c_fc.weight"]
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="missing tensors"):
        GPT.from_pretrained(tmp_path)
    state = dict(tensors)
    state["transformer.h.0.attn.c_attn.weight"] = torch.zeros(32, 95)
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="has shape"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(config.replace('"n_layer": 2', '"n_layer": 3'))
    torch.save(dict(tensors), tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="n_layer"):
        GPT.from_pretrained(tmp_path)


def test_offline_download_names_the_file_and_folder(tmp_path, monkeypatch):
    def offline(url, filename, reporthook=None):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(urllib.request, "urlretrieve", offline)
    monkeypatch.setenv("ICOT_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError) as e:
        GPT.from_pretrained("gpt2")
    message = str(e.value)
    assert "model.safetensors" in message or "config.json" in message
    assert str(tmp_path / "gpt2") in message and "\n" not in message
    assert list((tmp_path / "gpt2").iterdir()) == []                  # no half-downloaded file
    with pytest.raises(CheckpointError, match="not one of"):
        GPT.from_pretrained("gpt3")


@pytest.fixture
def file_server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/hub, recording the paths asked for."""
    root, asked = tmp_path / "hub", []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            asked.append(self.path)
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root, asked
    server.shutdown()


def test_download_from_a_local_mirror_once(gpt2_folder, file_server, tmp_path, monkeypatch, capsys):
    """The paper command's first step on a fresh machine: GPT-2 fetched once into the cache, with progress."""
    written, _, folder = gpt2_folder
    url, root, asked = file_server
    shutil.copytree(folder / "st", root / "openai-community" / "gpt2" / "resolve" / "main")
    monkeypatch.setenv("ICOT_HUB", url)
    monkeypatch.setenv("ICOT_CACHE", str(tmp_path / "cache"))
    model = GPT.from_pretrained("gpt2")
    assert sorted(p.name for p in (tmp_path / "cache" / "gpt2").iterdir()) == ["config.json",
                                                                               "model.safetensors"]
    assert torch.equal(model.transformer.h[1].mlp.c_fc.weight, written.transformer.h[1].mlp.c_fc.weight)
    weights = f"{url}/openai-community/gpt2/resolve/main/model.safetensors"
    assert f"downloading {weights}" in capsys.readouterr().err
    GPT.from_pretrained("gpt2")
    assert len(asked) == 2                                            # the second load read the cache only
    monkeypatch.setenv("ICOT_CACHE", str(tmp_path / "other"))
    with pytest.raises(CheckpointError, match="404"):                 # a mirror without gpt2-medium
        GPT.from_pretrained("gpt2-medium")
    assert list((tmp_path / "other" / "gpt2-medium").iterdir()) == []


def test_generation_never_runs_past_the_position_table():
    m = GPT(GPTConfig(block_size=12, n_layer=1, n_head=1, n_embd=8, vocab_ids=[5, 6])).eval()
    out = m.generate(torch.tensor([[5, 6, 5, EOT]]), 50, temperature=0,
                     position_ids=torch.tensor([[0, 1, 2, 6]]))
    assert out.shape == (1, 4 + 5)                                    # positions 7..11, the last row


def test_unused_mask_buffers_of_any_dtype_are_skipped(gpt2_folder, tmp_path):
    """Some exports store each layer's causal mask `attn.bias` as U8 or BOOL: not loaded, so not checked."""
    written, _, folder = gpt2_folder
    valid = (folder / "st" / "model.safetensors").read_bytes()
    n = int.from_bytes(valid[:8], "little")
    header, payload = json.loads(valid[8:8 + n]), valid[8 + n:]
    mask = bytes(64 * 64)
    header["transformer.h.0.attn.bias"] = {"dtype": "BOOL", "shape": [1, 1, 64, 64],
                                           "data_offsets": [len(payload), len(payload) + len(mask)]}
    (tmp_path / "model.safetensors").write_bytes(safetensors_bytes(header, payload + mask))
    (tmp_path / "config.json").write_text((folder / "st" / "config.json").read_text())
    ours = GPT.from_pretrained(tmp_path)
    idx = torch.randint(0, 50257, (2, 10), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (ours(idx)[0] - written(idx)[0]).abs().max().item() < 1e-4


@pytest.mark.parametrize("text", ['{"n_layer": 2,', "[2, 4]", "\xff"])
def test_malformed_config_json_is_one_clear_error(gpt2_folder, tmp_path, text):
    _, _, folder = gpt2_folder
    (tmp_path / "model.safetensors").write_bytes((folder / "st" / "model.safetensors").read_bytes())
    (tmp_path / "config.json").write_text(text, encoding="latin-1")
    with pytest.raises(CheckpointError, match="config.json: not"):
        GPT.from_pretrained(tmp_path)


COPIED_ALONE = """
import json, sys
import torch
from model import EOT, GPT, GPTConfig, IGNORE
torch.manual_seed(0)
small = GPT(GPTConfig(block_size=32, n_layer=2, n_head=2, n_embd=16, vocab_ids=[11, 12, 13]))
idx = torch.tensor([[11, 12, EOT, 13, EOT, 12, EOT]])
targets = torch.tensor([[IGNORE, IGNORE, 13, EOT, 12, EOT, IGNORE]])
logits, loss = small(idx, targets)
loss.backward()
generated = small.eval().generate(idx[:, :3], 8, temperature=0, stop_after_separators=2)
loaded = GPT.from_pretrained(sys.argv[1])
print(json.dumps({"logits_shape": list(logits.shape), "loss": loss.item(), "generated": generated.tolist(),
                  "logits": loaded(torch.tensor([[1, 2, 3, 4]]))[0][0, -1, :5].tolist()}))
"""


def test_model_py_works_copied_alone_into_another_repo(gpt2_folder, tmp_path):
    """model.py is copied alone into an empty folder: a fresh Python builds a GPT, trains a step's forward and
    backward with labels, decodes greedily with the cache, and loads a safetensors GPT-2 folder."""
    written, _, folder = gpt2_folder
    shutil.copy(Path(model_module.__file__), tmp_path / "model.py")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", COPIED_ALONE, str(folder / "st")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    # (B, T, vocab of 3 + EOT)
    assert result["logits_shape"] == [1, 7, 4] and 0 < result["loss"] < 10
    assert len(result["generated"][0]) <= 3 + 8 and result["generated"][0][:3] == [11, 12, EOT]
    with torch.no_grad():
        expected = written(torch.tensor([[1, 2, 3, 4]]))[0][0, -1, :5]
    assert torch.allclose(torch.tensor(result["logits"]), expected, atol=1e-5)
