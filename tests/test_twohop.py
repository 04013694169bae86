import json
from collections import Counter

import numpy as np
import pytest

import data
from beyond import twohop
from beyond.twohop import GraphConfig

SMALL = dict(entities=40, relations=8, relations_per_entity=5, ood_share=0.3, test_id_share=0.1, ratio=2.0)


def generate(folder, **changes):
    return twohop.generate_twohop("twohop", folder, GraphConfig(**{**SMALL, **changes}))


def facts(folder, split):
    """The split's text lines as tuples: (h, r, t) for atomic facts, (h, r1, b, r2, t) for two-hop facts."""
    out = []
    for line in (folder / f"{split}.txt").read_text().splitlines():
        source, target = line.split("||")
        cot, answer = target.split("####")
        out.append((*source.split()[:1], *source.split()[1:2], *cot.split(), *source.split()[2:],
                    answer.strip()))
    return out


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("twohop") / "twohop"
    return folder, generate(folder, noise_share=0.25, noise_kind="tail")


def knowledge(folder):
    atomic = facts(folder, "atomic_id") + facts(folder, "atomic_ood")
    return {(h, r): t for h, r, t in atomic}, {(h, r) for h, r, _ in facts(folder, "atomic_ood")}


def test_one_tail_per_head_and_relation(noisy):
    folder, meta = noisy
    atomic = facts(folder, "atomic_id") + facts(folder, "atomic_ood")
    pairs = Counter((h, r) for h, r, _ in atomic)
    assert len(atomic) == 40 * 5 == meta["counts"]["atomic_facts"] and max(pairs.values()) == 1
    # k distinct relations each
    assert Counter(h for h, _ in pairs) == Counter({h: 5 for h, _ in pairs})
    trained_atomic = [f for f in facts(folder, "train") if len(f) == 3]
    # ID and OOD, all trained on
    assert sorted(trained_atomic) == sorted(atomic)


def test_test_chains_compose_the_right_facts_and_are_not_trained(noisy):
    folder, _ = noisy
    tail_of, ood = knowledge(folder)
    for split, want_ood in (("test_id", False), ("test_ood", True)):
        chains = facts(folder, split)
        assert chains
        for h, r1, b, r2, t in chains:
            assert tail_of[h, r1] == b and tail_of[b, r2] == t                       # clean
            assert ((h, r1) in ood) == ((b, r2) in ood) == want_ood
    trained = {(h, r1, r2) for h, r1, _, r2, _ in (f for f in facts(folder, "train") if len(f) == 5)}
    assert not trained & {(h, r1, r2) for h, r1, _, r2, _ in facts(folder, "test_id")}
    assert not trained & {(h, r1, r2) for h, r1, _, r2, _ in facts(folder, "test_ood")}
    val = facts(folder, "val")
    assert sorted(val) == sorted(facts(folder, "test_id") + facts(folder, "test_ood"))


def test_ratio_and_noise_share_are_exact_and_noise_only_in_train(noisy):
    folder, meta = noisy
    tail_of, ood = knowledge(folder)
    two_hop = [f for f in facts(folder, "train") if len(f) == 5]
    assert len(two_hop) == round(2.0 * len(facts(folder, "atomic_id"))) == meta["counts"]["two_hop_trained"]
    assert all((h, r1) not in ood and (b, r2) not in ood for h, r1, b, r2, _ in two_hop)   # from the ID pool
    wrong_tail = [tail_of[b, r2] != t for h, r1, b, r2, t in two_hop]
    assert all(tail_of[h, r1] == b for h, r1, b, _, _ in two_hop)                     # tail noise keeps b
    assert sum(wrong_tail) == round(0.25 * len(two_hop)) == meta["counts"]["corrupted"]


@pytest.mark.parametrize("kind", ["bridge", "both"])
def test_bridge_noise(kind, tmp_path):
    generate(tmp_path, noise_share=0.5, noise_kind=kind)
    tail_of, _ = knowledge(tmp_path)
    two_hop = [f for f in facts(tmp_path, "train") if len(f) == 5]
    wrong_bridge = [tail_of[h, r1] != b for h, r1, b, _, _ in two_hop]
    assert sum(wrong_bridge) == round(0.5 * len(two_hop))
    # bridge noise keeps the true tail (of the true bridge); both: the tail is replaced too
    true_tail = [tail_of[tail_of[h, r1], r2] == t for h, r1, b, r2, t in two_hop]
    assert sum(not ok for ok in true_tail) == (0 if kind == "bridge" else round(0.5 * len(two_hop)))


def test_each_entity_is_one_token_with_one_id_in_every_role(noisy):
    folder, meta = noisy
    enc = data.tokenizer()
    entity_ids, relation_ids = meta["entity_ids"], meta["relation_ids"]
    assert len(set(entity_ids)) == 40 and len(set(relation_ids)) == 8
    assert not set(entity_ids) & set(relation_ids)
    id_of = {enc.decode([i]).strip(): i for i in entity_ids + relation_ids}
    assert all(enc.encode_ordinary(" " + word) == [i] for word, i in id_of.items())
    for split in ("train", "test_ood", "atomic_id"):
        loaded = data.load_split(folder, split)
        tokens, lengths, seps = loaded.batch(np.arange(len(loaded)))
        for row, length, sep, fact in zip(tokens, lengths, seps, facts(folder, split)):
            h, *middle, t = fact
            assert row[0] == id_of[h] and row[sep[2] - 2] == id_of[t]               # head and answer
            if len(fact) == 5:
                assert row[sep[0] + 1] == id_of[fact[2]] and row[2] == id_of[fact[3]]   # bridge, r2
        # the array the generator wrote is what the tokenizer makes of the text lines
        text_rows = data.encode_examples(*zip(*data.read_text(folder / f"{split}.txt")), enc)
        assert np.array_equal(np.concatenate([np.array(r) for r in text_rows]), np.asarray(loaded.tokens))


def test_same_seed_same_bytes(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate(tmp_path / name, seed=seed)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(files) == 15                                                         # 7 splits x 2 + meta.json
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    assert (tmp_path / "a" / "train.bin").read_bytes() != (tmp_path / "c" / "train.bin").read_bytes()
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["report_splits"] == ["test_id", "test_ood", "atomic_ood"]


@pytest.mark.parametrize("argv, message", [
    (["--ratio", "0"], "--ratio (lambda) must be > 0"),
    (["--ratio", "50"], "asks for"),
    (["--noise-share", "1.5"], "--noise-share (xi) must be in [0, 1]"),
    (["--noise-kind", "middle"], "--noise-kind must be one of"),
    (["--relations", "4", "--relations-per-entity", "5"], "--relations-per-entity 5 must be between 1 and"),
    (["--ood-share", "0.01"], "leaves 0 OOD"),
    (["--entities", "100000"], "single-token entity words"),
])
def test_bad_graphs_are_one_line_and_write_nothing(argv, message, tmp_path, capsys):
    out = tmp_path / "twohop"
    small = ["--entities", "40", "--relations", "8", "--relations-per-entity", "5", "--ood-share", "0.3"]
    with pytest.raises(SystemExit) as e:
        data.main(["--task", "twohop", "--out", str(out), *small, *argv])
    assert message in str(e.value.code) and "\n" not in str(e.value.code)
    assert not out.exists()


def test_data_py_hands_two_hop_tasks_to_the_generator(tmp_path, capsys):
    data.main(["--task", "twohop-tiny", "--out", str(tmp_path / "t"), "--entities", "40", "--relations", "8",
               "--relations-per-entity", "5", "--ood-share", "0.3", "--test-id-share", "0.1", "--ratio", "1"])
    assert json.loads((tmp_path / "t" / "meta.json").read_text())["task"] == "twohop-tiny"
    with pytest.raises(SystemExit):
        # a two-hop option elsewhere
        data.main(["--task", "mult2x2", "--entities", "40"])


def test_end_to_end_the_cot_model_learns_the_facts_and_the_two_hop_format(tmp_path):
    """A tiny graph: after 60 epochs (1,080 steps) the explicit-CoT model knows its atomic facts and writes
    'bridge #### tail' for the two-hop facts it was trained on; the ID test is printed, not asserted."""
    import eval as evaluation
    import train
    generate(tmp_path / "twohop", entities=30, relations_per_entity=4, ratio=2.0)
    train.main(["--task", "twohop", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--model",
                "tiny", "--mode", "explicit", "--n-layer", "2", "--n-embd", "64", "--batch-size", "16",
                "--lr", "3e-3", "--decay-epochs", "0", "--epochs", "60", "--log-every", "1000", "--val-limit",
                "20"])
    model, info = evaluation.load_checkpoint(tmp_path / "run" / "ckpt.pt")
    scores = {name: evaluation.evaluate(model, data.load_split(tmp_path / "twohop", name),
                                        evaluation.Level(0), batch_size=100)
              for name in ("atomic_id", "atomic_ood", "train_twohop", "test_id")}
    print({name: round(s["target_accuracy"], 3) for name, s in scores.items()})
    assert scores["atomic_id"]["accuracy"] >= 0.9 and scores["atomic_ood"]["accuracy"] >= 0.9
    assert scores["train_twohop"]["target_accuracy"] >= 0.9                   # bridge and tail both right


@pytest.mark.parametrize("kind", ["tail", "bridge"])
def test_bridge_targets_name_the_bridge_as_written_for_every_training_chain(kind, tmp_path):
    """The bridge probe's target: for every two-hop training row, the entity its CoT names (a corrupted bridge
    as written, not the graph's), at the first separator; nothing on atomic facts; the same after removal."""
    meta = generate(tmp_path, noise_share=0.5, noise_kind=kind)
    tail_of, _ = knowledge(tmp_path)
    enc = data.tokenizer()
    number_of = {enc.decode([i]).strip(): n for n, i in enumerate(meta["entity_ids"])}
    train_split = data.load_split(tmp_path, "train")
    tokens, lengths, seps = train_split.batch(np.arange(len(train_split)))
    targets = twohop.bridge_targets(tokens, seps, np.array(meta["entity_ids"]))
    rows = facts(tmp_path, "train")
    wrong_bridge = 0
    for row_targets, sep, fact in zip(targets, seps, rows):
        named = row_targets[row_targets != -100]
        if len(fact) == 3:
            assert len(named) == 0                                                   # atomic: no bridge
            continue
        h, r1, b, _, _ = fact
        assert named.tolist() == [number_of[b]] and row_targets[sep[0]] == number_of[b]
        wrong_bridge += tail_of[h, r1] != b
    assert wrong_bridge == (round(0.5 * sum(len(f) == 5 for f in rows)) if kind == "bridge" else 0)
    from schedule import remove_cot
    removed = remove_cot((tokens, lengths, seps), np.full(len(tokens), np.inf), "left", True)[0]
    # the separator stays in place
    assert (removed[np.arange(len(tokens)), seps[:, 0]] == data.EOT).all()


def test_bridge_targets_need_entities_after_the_separator(noisy):
    folder, meta = noisy
    loaded = data.load_split(folder, "train")
    tokens, _, seps = loaded.batch(np.arange(len(loaded)))
    with pytest.raises(data.DataError, match="not an entity of this graph"):
        twohop.bridge_targets(tokens, seps, np.array(meta["entity_ids"][1:]))      # an entity missing
