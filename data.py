"""
Datasets for Stepwise Internalization, written the nanoGPT way: text + a flat uint16 .bin per split.

Text format (one example per line, the reference code's format):

    input||chain-of-thought #### output

For K-by-K multiplication every number is written least-significant digit first, digits separated by
spaces. The CoT lists the K partial products a * b_j * 10^j (width K+1+j), joined by ' + '; partial
products 2 .. K-1 are each followed by the running sum, same width, in ' ( ... )'. The output is the
product, width 2K:

    5 6 3 2 * 7 4 3 4||5 5 5 6 1 + 0 0 6 4 9 0 ( 5 5 1 1 1 1 ) + ... #### 5 5 6 0 8 2 0 1

Tokens: each example is the GPT-2 (tiktoken 'gpt2') encoding of the string the reference feeds its
tokenizer, ' {input} <|endoftext|> {cot} <|endoftext|> #### {output} <|endoftext|>'. Every example
therefore holds exactly three id-50256 separators and the .bin needs no index.

    python data.py --task mult4x4                       # generate data/mult4x4/
    python data.py --task gsm8k --from-text DIR          # import the reference's text files
    python data.py --task twohop [graph options]         # two-hop facts, the second study (beyond/twohop.py)
"""
import argparse
import json
import math
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import tiktoken

EOT = 50256                   # <|endoftext|>, the separator
DIGIT_IDS = np.array([657, 352, 362, 513, 604, 642, 718, 767, 807, 860], np.uint16)   # GPT-2's ' 0' .. ' 9'
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
REFERENCE_SPLIT_FILES = {"train": ["train.txt"], "val": ["valid.txt", "val.txt"],
                         "test": ["test.txt", "test_bigbench.txt"]}


class DataError(ValueError):
    """Bad input: the message says what was wrong and where."""


def ranged(kind, test, what):
    """An argparse type for the project's command lines: `kind` of the text where test(value) holds; else one
    line saying `what` it expects."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not test(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


COUNT = ranged(int, lambda v: v >= 0, "a whole number >= 0")
POSITIVE = ranged(int, lambda v: v >= 1, "a whole number >= 1")
RATE = ranged(float, lambda v: 0 < v < math.inf, "a number > 0")
RATE_OR_INF = ranged(float, lambda v: v > 0, "a number > 0 or inf")
WEIGHT = ranged(float, lambda v: 0 <= v < math.inf, "a number >= 0")
PATH = ranged(str, lambda v: v.strip() != "", "a path")
DEVICE = ranged(str, lambda v: re.fullmatch(r"cpu|mps|cuda(:\d+)?", v), "cpu, cuda, cuda:N or mps")


def tokenizer():
    """tiktoken's GPT-2 encoding; its files are downloaded once, or read from $TIKTOKEN_CACHE_DIR offline."""
    try:
        return tiktoken.get_encoding("gpt2")
    except OSError as e:
        raise DataError(f"cannot load the GPT-2 tokenizer ({type(e).__name__}): offline, set "
                        f"TIKTOKEN_CACHE_DIR to a folder holding tiktoken's gpt2 files") from None


def parse_task(task):
    """'mult7x7' -> 7. Raises DataError for anything that is not multKxK with 2 <= K <= 20."""
    match = re.fullmatch(r"mult(\d+)x(\d+)", task)
    if not match or match[1] != match[2]:
        raise DataError(f"unknown task {task!r}: expected multKxK (e.g. mult4x4), or --from-text DIR")
    k = int(match[1])
    if not 2 <= k <= 20:
        raise DataError(f"task {task!r}: K must be between 2 and 20, got {k}")
    return k


# ----------------------------------------------------------------------------- multiplication

def problem_count(k):
    """Distinct K-by-K problems: a K-digit number leads with 1..9, so each operand has 9 * 10^(K-1) values."""
    return (9 * 10 ** (k - 1)) ** 2


def sample_operands(k, n, rng):
    """n distinct (a, b) pairs of uniform K-digit numbers, as digit arrays (n, K), least-significant first."""
    per_operand, space = 9 * 10 ** (k - 1), problem_count(k)
    if n > space:
        raise DataError(f"mult{k}x{k} has only {space:,} distinct problems, {n:,} were requested")
    if space <= 10 ** 7:                               # small space: draw without replacement, exactly
        index = rng.permutation(space)[:n]
        a, b = 10 ** (k - 1) + index // per_operand, 10 ** (k - 1) + index % per_operand
        powers = 10 ** np.arange(k)
        return tuple((x[:, None] // powers % 10).astype(np.uint8) for x in (a, b))
    pairs = np.empty((0, 2 * k), np.uint8)
    while len(pairs) < n:                              # huge space: duplicates are rare, top up after dedup
        draw = rng.integers(0, 10, size=(n - len(pairs), 2 * k), dtype=np.uint8)
        draw[:, [k - 1, 2 * k - 1]] = rng.integers(1, 10, size=(len(draw), 2), dtype=np.uint8)
        pairs = np.concatenate([pairs, draw])
        _, first = np.unique(pairs, axis=0, return_index=True)
        pairs = pairs[np.sort(first)]                  # keep draw order, drop repeats
    return pairs[:n, :k], pairs[:n, k:]


def add_values(x, y):
    """Column values of the sum of two equal-width little-endian digit arrays (n, W): value_i = x_i + y_i +
    carry_i, digit_i = value_i % 10, carry_(i+1) = value_i // 10; the caller guarantees no overflow."""
    values, carry = np.empty(x.shape, np.uint16), 0
    for i in range(x.shape[1]):
        values[:, i] = x[:, i].astype(np.uint16) + y[:, i] + carry
        carry = values[:, i] // 10
    return values


def times_values(a, d, shift, width):
    """Column values of a * d * 10^shift, of the given width (a: (n, K), d: (n,)): a_i * d + carry_i, the
    shifted-in zeros, and the last carry."""
    values, carry = np.zeros((len(a), width), np.uint16), 0
    for i in range(a.shape[1]):
        values[:, shift + i] = a[:, i].astype(np.uint16) * d + carry
        carry = values[:, shift + i] // 10
    values[:, shift + a.shape[1]] = carry
    return values


def product_values(a, b):
    """Column values of the product a * b (n, 2K), after Bai et al. 2025's running sum: value_i = sum over
    p + q = i of a_p * b_q, plus the carry value_(i-1) // 10; digit_i = value_i % 10."""
    k = a.shape[1]
    sums = np.zeros((len(a), 2 * k), np.int64)
    for p in range(k):
        sums[:, p:p + k] += a[:, p:p + 1] * b                              # a_p * b_q lands in column p + q
    return add_values(sums, np.zeros_like(sums))                          # pass the carries along the columns


def multiplication_values(a, b):
    """
    The value behind every digit of every example in line order (n, slots) and the line with 'D' for each
    digit. A digit is its value % 10; a computed digit passes value // 10 on as the carry of the next column
    (the operands' values are the digits themselves). The answer's values are the product's column sums
    (product_values), not the last CoT sum's: the same digits, and what a model answering without CoT
    must hold before each one.
    """
    k = a.shape[1]
    fields, source, target = [a, b], ["D"] * k + ["*"] + ["D"] * k, []
    for j in range(k):
        partial = times_values(a, b[:, j], j, k + 1 + j)           # a * b_j * 10^j, width K+1+j
        fields.append(partial)
        target += (["+"] if j > 0 else []) + ["D"] * (k + 1 + j)
        if j == 0:
            running = partial
        elif j < k - 1:                                            # 2nd .. (K-1)-th: running sum
            running = add_values(np.pad(running % 10, ((0, 0), (0, 1))), partial % 10)
            fields.append(running)
            target += ["("] + ["D"] * (k + 1 + j) + [")"]
    fields.append(product_values(a, b))                            # the product, width 2K
    target += ["####"] + ["D"] * (2 * k)
    return np.concatenate(fields, axis=1), " ".join(source) + "||" + " ".join(target)


def multiplication_lines(a, b):
    """The reference's text lines for operand digit arrays a, b (vectorized: one template, filled)."""
    values, template = multiplication_values(a, b)
    chars = np.frombuffer((template + "\n").encode(), np.uint8)
    slots = np.flatnonzero(chars == ord("D"))
    rows = np.tile(chars, (len(a), 1))
    rows[:, slots] = values % 10 + ord("0")
    return rows.tobytes().decode().splitlines()


def multiplication_tokens(a, b, enc):
    """GPT-2 ids of every example (n, L): one digit = one token ' d', so tokenize the template once."""
    values, template = multiplication_values(a, b)
    source, target = template.split("||")
    cot, answer = target.split(" #### ")
    zeros = lambda s: s.replace("D", "0")
    ids = np.array(encode_examples([zeros(source)], [zeros(cot)], ["#### " + zeros(answer)], enc)[0])
    slots = np.flatnonzero(ids == enc.encode_ordinary(" 0")[0])
    assert len(slots) == values.shape[1], "every digit must be its own token"
    rows = np.tile(ids.astype(np.uint16), (len(a), 1))
    rows[:, slots] = DIGIT_IDS[values % 10]
    return rows


# ----------------------------------------------------------------------------- text lines

def split_line(line, where):
    """'input||cot #### output' -> (input, cot, '#### output') as the reference reads it."""
    parts = line.strip().split("||")
    if len(parts) != 2:
        raise DataError(f"{where}: expected exactly one '||' between input and target")
    source, target = parts
    if not source.strip():
        raise DataError(f"{where}: empty input before '||'")
    if "####" not in target:
        raise DataError(f"{where}: no '####' before the output")
    cot, answer = target.split("####", 1)
    return source, cot.strip(), extract_answer("####" + answer)


def extract_answer(text):
    """Reference rule: the answer is '####' plus what follows it, stripped, commas removed; without '####'
    the whole text (which then never equals a reference answer)."""
    if "####" not in text:
        return text.strip().replace(",", "")
    return ("####" + text.strip().split("####", 1)[1]).strip().replace(",", "")


def read_text(path):
    """Parse a reference-format text file; blank lines are skipped, a malformed one is an error."""
    if not Path(path).is_file():
        raise DataError(f"{path}: no such file (a reference-format text file: input||cot #### output)")
    examples = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                examples.append(split_line(line, f"{path}:{number}"))
    if not examples:
        raise DataError(f"{path}: no examples")
    return examples


def encode_examples(sources, cots, answers, enc):
    """Reference string ' {src} <eos> {cot} <eos> {ans} <eos>' -> ids; the separators split the encoding.
    An empty CoT (a one-hop fact) encodes to nothing: ' {src} <eos> <eos> {ans} <eos>', as --mode nocot."""
    pieces = enc.encode_ordinary_batch([f" {s} " for s in sources] + [f" {c} " if c else "" for c in cots]
                                       + [f" {a} " for a in answers])
    n = len(sources)
    return [pieces[i] + [EOT] + pieces[n + i] + [EOT] + pieces[2 * n + i] + [EOT] for i in range(n)]


# ----------------------------------------------------------------------------- writing and loading

def write_atomic(path, write):
    """Write through a temporary name and rename, so an interrupted run leaves no half file; a write that
    fails (a full disk) leaves no temporary file and says which file it was."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:                          # torch.save: a full disk is a RuntimeError
        reason = getattr(e, "strerror", None) or str(e).strip().splitlines()[0][:200]
        raise DataError(f"{path}: could not be written ({reason})") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_dataset(out, task, splits, extra_meta):
    """splits: {name: (text lines or None, token rows as a 2-D uint16 array or a list of id lists)}. Written
    whole into a temporary folder that then takes `out`'s place: a killed write leaves the old dataset or the
    new one."""
    check_replaceable(out)
    final, out = Path(out), Path(out).with_name(Path(out).name + f".writing-{os.getpid()}")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    try:
        meta = write_splits(out, task, splits, extra_meta)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    old = final.with_name(final.name + f".old-{os.getpid()}")
    if final.exists():
        final.rename(old)
    out.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return meta


def check_replaceable(folder):
    """A dataset folder may be written over; a file, or a folder holding anything else (a run's checkpoints),
    stops the write before it starts."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder}: a file, not a dataset folder: not replaced (choose another --out)")
    # hidden files (a Mac's .DS_Store) do not count
    names = sorted(p.name for p in folder.iterdir() if p.name[0] != ".") if folder.exists() else []
    foreign = [name for name in names if not re.fullmatch(r"meta\.json|\w+\.(txt|bin)", name)]
    if foreign or (names and "meta.json" not in names):
        raise DataError(f"{folder}: holds {', '.join((foreign or names)[:3])}, not a dataset: not replaced "
                        f"(choose another --out)")


def write_splits(out, task, splits, extra_meta):
    """Each split's .txt and .bin, then meta.json (task, sizes, longest example, vocabulary), into `out`."""
    meta = {"task": task, "tokenizer": "gpt2", "format_version": FORMAT_VERSION, **extra_meta,
            "splits": {}}
    vocab = set()
    for name, (lines, rows) in splits.items():
        flat = rows.reshape(-1) if isinstance(rows, np.ndarray) else np.fromiter(
            (t for row in rows for t in row), np.uint16)
        lengths = [rows.shape[1]] * len(rows) if isinstance(rows, np.ndarray) else [len(r) for r in rows]
        if lines is not None:
            write_atomic(out / f"{name}.txt", lambda f: f.write(("\n".join(lines) + "\n").encode()))
        write_atomic(out / f"{name}.bin", lambda f: f.write(flat.astype(np.uint16).tobytes()))
        vocab.update(np.unique(flat).tolist())
        meta["splits"][name] = {"examples": len(rows), "tokens": int(flat.size),
                                "longest_example": int(max(lengths))}
    meta["vocab_ids"] = sorted(vocab)
    write_atomic(out / "meta.json", lambda f: f.write(json.dumps(meta, indent=1).encode()))
    return meta


def generate_multiplication(task, out, sizes, seed):
    """Generate the K-by-K splits; test first, then val, then train, all distinct problems."""
    k = parse_task(task)
    if min(sizes.values()) <= 0:
        raise DataError(f"split sizes must be > 0, got {sizes}")
    rng = np.random.default_rng(seed)
    a, b = sample_operands(k, sum(sizes.values()), rng)
    enc, splits, start = tokenizer(), {}, 0
    for name in ("test", "val", "train"):
        part = slice(start, start + sizes[name])
        start = part.stop
        splits[name] = (multiplication_lines(a[part], b[part]), multiplication_tokens(a[part], b[part], enc))
    return write_dataset(Path(out), task, splits, {"k": k, "seed": seed})


def import_text(task, source_dir, out):
    """Read the reference's folder (train.txt, valid.txt, test.txt or test_bigbench.txt) as it is."""
    source_dir, enc, splits = Path(source_dir), tokenizer(), {}
    for name, candidates in REFERENCE_SPLIT_FILES.items():
        path = next((source_dir / c for c in candidates if (source_dir / c).exists()), None)
        if path is not None:
            examples = read_text(path)
            rows = encode_examples(*zip(*examples), enc)
            lines = [f"{s}||{c} {a}" for s, c, a in examples]
            splits[name] = (lines, rows)
    if not splits:
        raise DataError(f"{source_dir}: none of {sum(REFERENCE_SPLIT_FILES.values(), [])} found")
    return write_dataset(Path(out), task, splits, {"source": str(source_dir)})


@dataclass
class Split:
    """One split in memory: flat tokens, and per example its start and its three separator positions."""
    tokens: np.ndarray      # (total_tokens,) uint16
    starts: np.ndarray      # (n,) index of each example's first token
    seps: np.ndarray        # (n, 3) absolute index of each example's three separators

    def __len__(self):
        return len(self.starts)

    def batch(self, example_ids):
        """Examples as a right-padded (B, L) array (padding: the separator id), their lengths, and their
        separator positions within the row. One gather, no loop over examples."""
        starts = self.starts[example_ids]
        lengths = self.seps[example_ids, 2] - starts + 1
        columns = np.arange(lengths.max())
        index = np.minimum(starts[:, None] + columns, len(self.tokens) - 1)
        rows = np.where(columns < lengths[:, None], self.tokens[index], EOT).astype(np.int64)
        return rows, lengths, self.seps[example_ids] - starts[:, None]


def split_from_tokens(tokens, where):
    """A Split over a flat token array: examples are delimited by their three separators."""
    sep_index = np.flatnonzero(tokens == EOT)
    if len(sep_index) == 0 or len(sep_index) % 3 or sep_index[-1] != len(tokens) - 1:
        raise DataError(f"{where}: not a token file of whole examples (three separators each)")
    seps = sep_index.reshape(-1, 3)
    return Split(tokens, np.concatenate([[0], seps[:-1, 2] + 1]), seps)


def load_split(data_dir, split, meta=None):
    """The one loader train.py and eval.py use. Vectorized: separators found with one comparison. With the
    folder's meta.json, the file must be what it says: examples, tokens, longest example, vocabulary."""
    path = Path(data_dir) / f"{split}.bin"
    if not path.exists():
        raise DataError(f"{path}: no such split file (run: python data.py --task ...)")
    if path.stat().st_size % 2 or not path.stat().st_size:
        raise DataError(f"{path}: {path.stat().st_size} bytes, not a whole number of 2-byte tokens "
                        f"(cut short?)")
    loaded = split_from_tokens(np.memmap(path, dtype=np.uint16, mode="r"), path)
    said = (meta or {}).get("splits", {}).get(split)
    if said is not None:
        longest = int((loaded.seps[:, 2] - loaded.starts + 1).max())
        found = {"examples": len(loaded), "tokens": len(loaded.tokens), "longest_example": longest}
        wrong = [f"{k} {found[k]} (meta.json: {said.get(k)})" for k in found if said.get(k) != found[k]]
        known = np.zeros(2 ** 16, bool)
        known[np.asarray(meta["vocab_ids"], np.int64)] = True
        if not known[loaded.tokens].all():
            unknown = int(loaded.tokens[~known[loaded.tokens]][0])
            wrong.append(f"token {unknown} outside meta.json's vocab_ids")
        if wrong:
            raise DataError(f"{path}: does not match its meta.json: {'; '.join(wrong)}")
    return loaded


def read_text_split(path):
    """A reference-format text file tokenized in memory, as a Split (what eval.py --text uses)."""
    rows = encode_examples(*zip(*read_text(path)), tokenizer())
    return split_from_tokens(np.fromiter((t for row in rows for t in row), np.uint16), path)


def load_meta(data_dir):
    """meta.json of a task folder, checked for what the loaders read from it."""
    path = Path(data_dir) / "meta.json"
    if not path.exists():
        raise DataError(f"{path}: missing (run: python data.py --task ...)")
    try:
        meta = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not JSON ({type(e).__name__})") from None
    ids = meta.get("vocab_ids") if isinstance(meta, dict) else None
    if not (isinstance(meta, dict) and isinstance(meta.get("task"), str)
            and isinstance(meta.get("splits"), dict)):
        raise DataError(f"{path}: not a data.py meta.json (an object with task, splits and vocab_ids)")
    if not isinstance(ids, list) or not ids or not all(type(i) is int and 0 <= i <= EOT for i in ids):
        raise DataError(f"{path}: vocab_ids must be a list of GPT-2 token ids (0..{EOT})")
    for name, split in meta["splits"].items():
        if not isinstance(split, dict) or not all(type(split.get(k)) is int and split[k] > 0
                                                  for k in ("examples", "tokens", "longest_example")):
            raise DataError(f"{path}: split {name!r} needs whole numbers examples, tokens, longest_example")
    return meta


def load_task(args, processes=1, rank_zero_first=lambda make, *a: make(*a)):
    """A task as train.py reads it (generated first if multKxK is missing): meta, the train and val splits
    (and the ones meta.json asks to report: two-hop test_id, test_ood), the first --train-size training
    examples, T batches an epoch, the longest example and CoTs. The last batch must have a row for each
    process."""
    tokenizer()                                                   # fail now, not at the first evaluation
    folder = rank_zero_first(prepare, args.task, args.data) if args.task.startswith("mult") else \
        Path(args.data) / args.task
    meta = load_meta(folder)
    if meta["task"] != args.task:
        raise DataError(f"{folder / 'meta.json'}: holds task {meta['task']}, not {args.task}")
    train, val = load_split(folder, "train", meta), load_split(folder, "val", meta)
    n_train = len(train) if args.train_size is None else min(args.train_size, len(train))
    if 0 < n_train % args.batch_size < processes:
        raise DataError(f"the last batch of an epoch has {n_train % args.batch_size} examples, fewer than "
                        f"the {processes} processes: change --batch-size or --train-size")
    longest_cot = lambda split, n: int((split.seps[:n, 1] - split.seps[:n, 0] - 1).max())
    reported = {name: load_split(folder, name, meta) for name in meta.get("report_splits", [])}
    return SimpleNamespace(meta=meta, train=train, val=val, n_train=n_train, reported=reported,
                           batches_per_epoch=math.ceil(n_train / args.batch_size),
                           longest_example=max(s["longest_example"] for s in meta["splits"].values()),
                           longest_val_cot=longest_cot(val, len(val)),
                           longest_train_cot=longest_cot(train, n_train))


def prepare(task, data_root, train_size=808000, val_size=1000, test_size=1000, seed=0):
    """Data folder of a task, generated if missing (what train.py calls). Small K has fewer distinct
    problems than 808,000 (2x2: 8,100): then the training split takes all that are left, and says so."""
    out = Path(data_root) / task
    if not (out / "meta.json").exists():
        k = parse_task(task)
        available = problem_count(k) - val_size - test_size
        if train_size > available:
            print(f"{task} has only {available:,} problems left for training: using all of them")
            train_size = available
        print(f"generating {out} ...", flush=True)
        generate_multiplication(task, out, {"train": train_size, "val": val_size, "test": test_size}, seed)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, help="multKxK (K = 2..20), twohop... (see beyond/twohop.py "
                                                       "for its options), or any name with --from-text")
    parser.add_argument("--out", help="output folder (default data/TASK)")
    parser.add_argument("--from-text", help="import a folder in the reference's text format")
    parser.add_argument("--train-size", type=POSITIVE, default=808000)
    parser.add_argument("--val-size", type=POSITIVE, default=1000)
    parser.add_argument("--test-size", type=POSITIVE, default=1000)
    parser.add_argument("--seed", type=COUNT, default=0)
    args, unknown = parser.parse_known_args(argv)
    if args.task.startswith("twohop"):                               # the second study's generator
        from beyond import twohop
        return twohop.main(argv)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    out = Path(args.out or Path("data") / args.task)
    try:
        check_replaceable(out)                                    # fail before generating, not after
        if args.from_text:
            meta = import_text(args.task, args.from_text, out)
        else:
            sizes = {"train": args.train_size, "val": args.val_size, "test": args.test_size}
            meta = generate_multiplication(args.task, out, sizes, args.seed)
    except (DataError, OSError, UnicodeDecodeError) as e:
        sys.exit(f"data.py: error: {e}")
    summary = ", ".join(f"{k}: {v['examples']} examples / {v['tokens']} tokens"
                        for k, v in meta["splits"].items())
    print(f"wrote {out}: {summary}")


if __name__ == "__main__":
    main()
