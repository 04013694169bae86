import json

import numpy as np
import pytest

import data
from conftest import REFERENCE


def operands(lines):
    """Digit arrays of the inputs of reference lines 'a * b||...'."""
    pairs = [line.split("||")[0].split(" * ") for line in lines]
    return [np.array([[int(d) for d in pair[i].split()] for pair in pairs], np.uint8) for i in (0, 1)]


@pytest.mark.parametrize("task", ["mult4x4", "mult5x5"])
def test_reproduces_every_reference_line(task):
    lines = (REFERENCE / task / "valid.txt").read_text().splitlines()
    assert len(lines) == 1000
    assert data.multiplication_lines(*operands(lines)) == lines


@pytest.mark.parametrize("task", ["mult4x4", "mult5x5"])
def test_token_ids_equal_tiktoken_on_reference_string(task):
    lines = (REFERENCE / task / "valid.txt").read_text().splitlines()
    enc = data.tokenizer()
    rows = data.multiplication_tokens(*operands(lines), enc)
    for row, line in zip(rows, lines):
        source, target = line.split("||")
        cot, answer = target.split(" #### ")
        reference = f" {source} <|endoftext|> {cot} <|endoftext|> #### {answer} <|endoftext|>"
        assert row.tolist() == enc.encode(reference, allowed_special={"<|endoftext|>"})


def test_small_k_layout():
    a, b = np.array([[8, 5]], np.uint8), np.array([[8, 7]], np.uint8)    # 58 * 78 = 4524
    assert data.multiplication_lines(a, b) == ["8 5 * 8 7||4 6 4 + 0 6 0 4 #### 4 2 5 4"]


def test_digit_ids_are_the_tokenizers():
    enc = data.tokenizer()
    assert data.DIGIT_IDS.tolist() == [enc.encode_ordinary(f" {d}")[0] for d in range(10)]


def decoded_lines(folder, split):
    """Rebuild the text lines from the .bin, one example at a time."""
    enc, s = data.tokenizer(), data.load_split(folder, split)
    lines = []
    for start, (sep1, sep2, end) in zip(s.starts, s.seps):
        source = enc.decode(s.tokens[start:sep1].tolist()).strip()
        cot = enc.decode(s.tokens[sep1 + 1:sep2].tolist()).strip()
        answer = enc.decode(s.tokens[sep2 + 1:end].tolist()).strip()
        lines.append(f"{source}||{cot} {answer}")
    return lines


def test_bin_decodes_to_txt_and_has_three_separators(mult3x3):
    for split in data.SPLITS:
        text = (mult3x3 / f"{split}.txt").read_text().splitlines()
        assert decoded_lines(mult3x3, split) == text
        s = data.load_split(mult3x3, split)
        per_example = [np.sum(s.tokens[a:e + 1] == data.EOT) for a, e in zip(s.starts, s.seps[:, 2])]
        assert set(per_example) == {3}


def test_meta(mult3x3):
    meta = json.loads((mult3x3 / "meta.json").read_text())
    assert meta["task"] == "mult3x3" and meta["k"] == 3 and meta["tokenizer"] == "gpt2"
    assert meta["splits"]["train"]["examples"] == 2000
    tokens = np.fromfile(mult3x3 / "train.bin", np.uint16)
    assert meta["splits"]["train"]["tokens"] == len(tokens)
    assert set(meta["vocab_ids"]) >= set(np.unique(tokens).tolist())
    assert meta["vocab_ids"] == sorted(meta["vocab_ids"])


def test_splits_disjoint_and_distinct(mult3x3):
    inputs = {split: [line.split("||")[0] for line in (mult3x3 / f"{split}.txt").read_text().splitlines()]
              for split in data.SPLITS}
    everything = sum(inputs.values(), [])
    assert len(set(everything)) == len(everything) == 2200


def test_operands_are_uniform_k_digit_numbers():
    a, b = data.sample_operands(4, 20000, np.random.default_rng(1))
    assert a[:, -1].min() == 1 and b[:, -1].min() == 1 and a.max() == 9
    assert abs(np.mean(a[:, 0] == 0) - 0.1) < 0.01                      # low digits uniform over 0..9


def test_deterministic(tmp_path):
    sizes = {"train": 300, "val": 20, "test": 20}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        data.generate_multiplication("mult4x4", tmp_path / name, sizes, seed)
    same = (tmp_path / "a" / "train.bin").read_bytes() == (tmp_path / "b" / "train.bin").read_bytes()
    other = (tmp_path / "a" / "train.bin").read_bytes() == (tmp_path / "c" / "train.bin").read_bytes()
    assert same and not other
    assert (tmp_path / "a" / "test.txt").read_text() == (tmp_path / "b" / "test.txt").read_text()


def test_large_k_uses_digit_arithmetic(tmp_path):
    data.generate_multiplication("mult20x20", tmp_path, {"train": 5, "val": 2, "test": 2}, 0)
    for line in (tmp_path / "train.txt").read_text().splitlines():
        a, b = (int(x.replace(" ", "")[::-1]) for x in line.split("||")[0].split(" * "))
        assert line.split("#### ")[1].replace(" ", "")[::-1] == f"{a * b:040d}"


def test_batch_gathers_padded_rows(mult3x3):
    s = data.load_split(mult3x3, "val")
    rows, lengths, seps = s.batch(np.array([3, 0, 7]))
    assert rows.shape == (3, lengths.max())
    assert rows[1, :lengths[1]].tolist() == s.tokens[s.starts[0]:s.seps[0, 2] + 1].tolist()
    assert (rows[np.arange(3)[:, None], seps] == data.EOT).all()


def test_gsm8k_import(tmp_path):
    data.main(["--task", "gsm8k", "--from-text", str(REFERENCE / "gsm8k"), "--out", str(tmp_path)])
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert list(meta["splits"]) == ["val"] and meta["splits"]["val"]["examples"] == 500
    s = data.load_split(tmp_path, "val")
    enc = data.tokenizer()
    first = (REFERENCE / "gsm8k" / "valid.txt").read_text().splitlines()[0]
    source, cot, answer = data.split_line(first, "x")
    reference = f" {source} <|endoftext|> {cot} <|endoftext|> {answer} <|endoftext|>"
    assert s.tokens[:s.seps[0, 2] + 1].tolist() == enc.encode(reference, allowed_special="all")


@pytest.mark.parametrize("argv, message", [
    (["--task", "mult4"], "unknown task"),
    (["--task", "mult21x21"], "K must be between 2 and 20"),
    (["--task", "mult1x1"], "K must be between 2 and 20"),
    (["--task", "mult3x3", "--val-size", "0"], "argument --val-size: expected a whole number >= 1, got '0'"),
    (["--task", "mult3x3", "--train-size", "-5"], "argument --train-size: expected a whole number >= 1"),
    (["--task", "mult2x2"], "only 8,100 distinct problems"),
])
def test_bad_arguments(tmp_path, argv, message, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        data.main(argv + ["--out", str(out)])
    line = str(e.value.code) if isinstance(e.value.code,
                                           str) else capsys.readouterr().err.strip().splitlines()[-1]
    assert e.value.code != 0 and message in line
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad_line, message", [
    ("1 2 * 3 4 #### 5", "expected exactly one '||'"),
    ("1 2 * 3 4||5 6", "no '####'"),
    ("  ||5 6 #### 7", "empty input"),
    ("a||b||c #### 1", "expected exactly one '||'"),
])
def test_malformed_text_lines(tmp_path, bad_line, message):
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.txt").write_text("1 * 2||2 #### 2\n" * 3)
    (source / "valid.txt").write_text("1 * 2||2 #### 2\n\n" + bad_line + "\n")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        data.main(["--task", "x", "--from-text", str(source), "--out", str(out)])
    assert f"valid.txt:3: {message}" in str(e.value.code)
    assert not out.exists()


def test_interrupted_write_leaves_no_file(tmp_path):
    def fail(f):
        f.write(b"half")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        data.write_atomic(tmp_path / "train.bin", fail)
    assert list(tmp_path.iterdir()) == []


def test_load_split_rejects_partial_file(tmp_path):
    (tmp_path / "val.bin").write_bytes(np.array([1, 2, data.EOT, 3], np.uint16).tobytes())
    with pytest.raises(data.DataError, match="three separators"):
        data.load_split(tmp_path, "val")


def test_tokenizer_unavailable_gives_one_clear_error(monkeypatch):
    def offline(name):
        raise ConnectionError("Name or service not known")            # what tiktoken raises without a cache
    monkeypatch.setattr(data.tiktoken, "get_encoding", offline)
    with pytest.raises(data.DataError, match="TIKTOKEN_CACHE_DIR"):
        data.tokenizer()
