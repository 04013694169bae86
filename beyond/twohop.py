"""
Two-hop facts over a random knowledge graph: the second study on this pipeline (Yao et al. 2025, "Unveiling
the Mechanisms of Explicit CoT Training", arXiv 2502.04667, whose setup builds on Wang et al. 2024's
grokked transformers). Its own file because its knobs and splits are its own; it writes through data.py's
writer, and train.py / eval.py read it with data.py's loader like any task.

The graph: every entity h gets `relations_per_entity` distinct relations r, each with one uniform random
tail t: the atomic facts (h, r) -> t. A share of them is out of distribution (OOD). Two-hop facts
(h, r1, r2) -> t go through the bridge b = r1(h), t = r2(b): both hops ID -> the training pool (99.5 %)
or test_id (0.5 %); both hops OOD -> test_ood, compositions of facts only ever trained on alone; mixed ->
discarded. Training set: every atomic fact (ID and OOD) plus lambda x |ID atomic| pooled two-hop facts,
a share xi of those corrupted (tail, bridge or both); every test set is clean. In the reference format:

    atomic       h r|| #### t            ' h r <eos> <eos> #### t <eos>'   (an empty CoT: no tokens)
    two-hop      h r1 r2||b #### t       the CoT is the bridge alone; --mode nocot trains 'h r1 r2|| #### t'

Every entity and relation is one GPT-2 token (entities ' word', relations ' Word'), the same id as input,
bridge or answer, so each split is built as a token array directly (no tokenizer call per example).

    python data.py --task twohop                       # the paper's graph: 2,000 entities, 200 relations
    python data.py --task twohop-cpu --entities 100 --relations 20 --relations-per-entity 12 --ood-share 0.2 \
        --test-id-share 0.05                           # the CPU study's graph (README)
"""
import argparse
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import data
from schedule import IGNORE

NOISE_KINDS = ("tail", "bridge", "both")


@dataclass
class GraphConfig:
    entities: int = 2000
    relations: int = 200
    relations_per_entity: int = 20
    ood_share: float = 0.05           # of the atomic facts
    test_id_share: float = 0.005      # of the ID two-hop facts; the rest is the training pool
    ratio: float = 7.2                # lambda: two-hop training facts per ID atomic fact
    noise_share: float = 0.0          # xi: corrupted share of the two-hop training facts
    noise_kind: str = "tail"
    train_sample: int = 2000          # two-hop training facts in the split train_twohop (for the curves)
    seed: int = 0

    def check(self):
        """One DataError line for a graph that cannot be built."""
        if self.entities < 2 or self.relations < 1:
            raise data.DataError(f"need at least 2 entities and 1 relation, got {self.entities} and "
                                 f"{self.relations}")
        if not 1 <= self.relations_per_entity <= self.relations:
            raise data.DataError(f"--relations-per-entity {self.relations_per_entity} must be between 1 and "
                                 f"--relations ({self.relations})")
        for name in ("ood_share", "test_id_share"):
            if not 0 < getattr(self, name) < 1:
                flag = "--" + name.replace("_", "-")
                raise data.DataError(f"{flag} must be in (0, 1), got {getattr(self, name)}")
        if not self.ratio > 0:
            raise data.DataError(f"--ratio (lambda) must be > 0, got {self.ratio}")
        if not 0 <= self.noise_share <= 1:
            raise data.DataError(f"--noise-share (xi) must be in [0, 1], got {self.noise_share}")
        if self.noise_kind not in NOISE_KINDS:
            raise data.DataError(f"--noise-kind must be one of {NOISE_KINDS}, got {self.noise_kind!r}")


def vocabulary(enc, n_entities, n_relations):
    """GPT-2 ids of single-token words, in id order: entities ' word' (lowercase), relations ' Word'."""
    entities, relations = [], []
    for i in range(enc.n_vocab - 1):
        text = enc.decode([i])
        pool = entities if re.fullmatch(" [a-z]{3,}", text) else \
            relations if re.fullmatch(" [A-Z][a-z]{2,}", text) else None
        if pool is not None and enc.encode_ordinary(text) == [i]:
            pool.append(i)
    if len(entities) < n_entities or len(relations) < n_relations:
        raise data.DataError(f"GPT-2 has {len(entities)} single-token entity words and {len(relations)} "
                             f"relation words; {n_entities} and {n_relations} were asked for")
    return np.array(entities[:n_entities]), np.array(relations[:n_relations])


def atomic_facts(config, rng):
    """(heads, relations, tails, ood): entity h's facts are rows h * k .. h * k + k - 1 (k relations each)."""
    k = config.relations_per_entity
    relations = np.argsort(rng.random((config.entities, config.relations)), axis=1)[:, :k]   # distinct per h
    tails = rng.integers(0, config.entities, size=(config.entities, k))
    n = config.entities * k
    ood = np.zeros(n, bool)
    ood[rng.permutation(n)[:round(config.ood_share * n)]] = True
    return np.repeat(np.arange(config.entities), k), relations.reshape(-1), tails.reshape(-1), ood


def two_hop_facts(heads, relations, tails, ood, k):
    """Every chain (h, r1, b, r2, t) as columns, and whether both hops are ID / both OOD."""
    first = np.repeat(np.arange(len(heads)), k)                   # fact (h, r1) -> b ...
    second = (tails[first] * k + np.tile(np.arange(k), len(heads)))  # ... then each fact of b
    chain = np.stack([heads[first], relations[first], tails[first], relations[second], tails[second]], axis=1)
    return chain, ~ood[first] & ~ood[second], ood[first] & ood[second]


def corrupt(chains, share, kind, n_entities, rng):
    """A copy with exactly round(share * n) chains corrupted: the tail, the bridge or both replaced by a
    different random entity. Returns the copy and which rows were corrupted."""
    chains, noisy = chains.copy(), np.zeros(len(chains), bool)
    noisy[rng.permutation(len(chains))[:round(share * len(chains))]] = True
    for column, corrupted in ((2, kind in ("bridge", "both")), (4, kind in ("tail", "both"))):
        if corrupted:                                             # + 1 .. n-1 (mod n): never the true entity
            shift = rng.integers(1, n_entities, size=noisy.sum())
            chains[noisy, column] = (chains[noisy, column] + shift) % n_entities
    return chains, noisy


def rows(facts, entity_ids, relation_ids, enc, cot=True):
    """Token rows in the reference layout: atomic facts (h, r, t) -> ' h r <eos> <eos> #### t <eos>', chains
    (h, r1, b, r2, t) -> ' h r1 r2 <eos> b <eos> #### t <eos>' (each part ends in the tokenizer's ' ')."""
    space, hashes, eot = enc.encode_ordinary(" ")[0], enc.encode_ordinary(" ####"), data.EOT
    n = len(facts)
    column = lambda ids: ids[:, None]
    constant = lambda *ids: np.tile(np.array(ids), (n, 1))
    if facts.shape[1] == 3:
        h, r, t = (ids[facts[:, i]] for ids, i in ((entity_ids, 0), (relation_ids, 1), (entity_ids, 2)))
        parts = [column(h), column(r), constant(space, eot, eot, *hashes), column(t), constant(space, eot)]
    else:
        columns = ((entity_ids, 0), (relation_ids, 1), (entity_ids, 2), (relation_ids, 3), (entity_ids, 4))
        h, r1, b, r2, t = (ids[facts[:, i]] for ids, i in columns)
        parts = [column(h), column(r1), column(r2), constant(space, eot), column(b),
                 constant(space, eot, *hashes), column(t), constant(space, eot)]
    return np.concatenate(parts, axis=1).astype(np.uint16)


def lines(facts, entity_words, relation_words):
    """The same examples as reference-format text."""
    e, r = entity_words, relation_words
    if facts.shape[1] == 3:
        return [f"{e[h]} {r[x]}|| #### {e[t]}" for h, x, t in facts]
    return [f"{e[h]} {r[r1]} {r[r2]}||{e[b]} #### {e[t]}" for h, r1, b, r2, t in facts]


def bridge_targets(tokens, seps, entity_ids):
    """
    Beyond the paper: what the bridge probe of train.py --bridge-weight must name. tokens: (B, L) rows with
    their CoT in place, seps: (B, 3) their separators. Each two-hop row's bridge (the CoT's first token, as
    written: a corrupted bridge too) as its number among entity_ids, at the first separator, the position
    that emits it in explicit CoT; IGNORE elsewhere and on atomic facts (empty CoT). The input before that
    separator is never removed, so the same positions hold after remove_cot.
    """
    rows = np.arange(len(tokens))
    has_cot = seps[:, 1] > seps[:, 0] + 1
    written = tokens[rows, np.minimum(seps[:, 0] + 1, tokens.shape[1] - 1)]
    number = np.searchsorted(entity_ids, written)
    is_entity = (number < len(entity_ids)) & (entity_ids[np.minimum(number, len(entity_ids) - 1)] == written)
    if (has_cot & ~is_entity).any():
        bad = written[has_cot & ~is_entity][0]
        raise data.DataError(f"bridge targets: a CoT starts with token {bad}, not an entity of this graph")
    targets = np.full(tokens.shape, IGNORE, dtype=np.int64)
    targets[rows[has_cot], seps[has_cot, 0]] = number[has_cot]
    return targets


def generate_twohop(task, out, config):
    """Build the graph and write train, val, test_id, test_ood, atomic_id, atomic_ood and train_twohop."""
    config.check()
    rng = np.random.default_rng(config.seed)
    enc = data.tokenizer()
    entity_ids, relation_ids = vocabulary(enc, config.entities, config.relations)
    heads, relations, tails, ood = atomic_facts(config, rng)
    atomic = np.stack([heads, relations, tails], axis=1)
    chains, both_id, both_ood = two_hop_facts(heads, relations, tails, ood, config.relations_per_entity)
    id_chains, test_ood = chains[both_id][rng.permutation(both_id.sum())], chains[both_ood]
    if len(test_ood) == 0 or len(id_chains) < 2:
        raise data.DataError(f"--ood-share {config.ood_share} leaves {len(test_ood)} OOD and "
                             f"{len(id_chains)} ID two-hop facts: the study needs both")
    n_test_id = max(1, round(config.test_id_share * len(id_chains)))
    test_id, pool = id_chains[:n_test_id], id_chains[n_test_id:]
    n_train = round(config.ratio * (~ood).sum())
    if n_train > len(pool):
        raise data.DataError(f"--ratio {config.ratio} asks for {n_train:,} two-hop training facts, the pool "
                             f"holds {len(pool):,} (at most --ratio {len(pool) / (~ood).sum():.2f})")
    trained, noisy = corrupt(pool[:n_train], config.noise_share, config.noise_kind, config.entities, rng)
    order = rng.permutation(len(atomic) + n_train)          # atomic and two-hop facts shuffled together
    train_rows = [*rows(atomic, entity_ids, relation_ids, enc), *rows(trained, entity_ids, relation_ids, enc)]
    words = lambda ids: [enc.decode([int(i)]).strip() for i in ids]
    entity_words, relation_words = words(entity_ids), words(relation_ids)
    train_lines = lines(atomic, entity_words, relation_words) + lines(trained, entity_words, relation_words)
    val = np.concatenate([test_id, test_ood])                       # as in the authors' code: the test sets
    val = val[rng.permutation(len(val))]                           # mixed, so --val-limit N takes both kinds
    splits = {"train": ([train_lines[i] for i in order], [train_rows[i] for i in order])}
    for name, facts in (("val", val), ("test_id", test_id), ("test_ood", test_ood),
                        ("atomic_id", atomic[~ood]), ("atomic_ood", atomic[ood]),
                        ("train_twohop", trained[:config.train_sample])):
        splits[name] = (lines(facts, entity_words, relation_words),
                        rows(facts, entity_ids, relation_ids, enc))
    counts = {"atomic_facts": len(atomic), "ood_atomic_facts": int(ood.sum()), "id_chains": len(id_chains),
              "ood_chains": len(test_ood), "pool": len(pool), "two_hop_trained": n_train,
              "corrupted": int(noisy.sum())}
    extra = {"graph": asdict(config), "counts": counts, "entity_ids": entity_ids.tolist(),
             "relation_ids": relation_ids.tolist(), "report_splits": ["test_id", "test_ood", "atomic_ood"]}
    return data.write_dataset(Path(out), task, splits, extra)


def main(argv=None):
    defaults = GraphConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True,
                   help="twohop, or any name starting with twohop (the folder's name)")
    p.add_argument("--out", help="output folder (default data/TASK)")
    p.add_argument("--entities", type=int, default=defaults.entities)
    p.add_argument("--relations", type=int, default=defaults.relations)
    p.add_argument("--relations-per-entity", type=int, default=defaults.relations_per_entity)
    p.add_argument("--ood-share", type=float, default=defaults.ood_share,
                   help="share of atomic facts that are OOD")
    p.add_argument("--test-id-share", type=float, default=defaults.test_id_share)
    p.add_argument("--ratio", type=float, default=defaults.ratio,
                   help="lambda: two-hop training facts per ID atomic")
    p.add_argument("--noise-share", type=float, default=defaults.noise_share,
                   help="xi: corrupted two-hop training facts")
    p.add_argument("--noise-kind", default=defaults.noise_kind, help=f"one of {NOISE_KINDS}")
    p.add_argument("--train-sample", type=int, default=defaults.train_sample)
    p.add_argument("--seed", type=int, default=defaults.seed)
    args = p.parse_args(argv)
    if not args.task.startswith("twohop"):
        p.error(f"--task {args.task}: two-hop task names start with 'twohop'")
    out = Path(args.out or Path("data") / args.task)
    config = GraphConfig(**{k: v for k, v in vars(args).items() if k not in ("task", "out")})
    try:
        meta = generate_twohop(args.task, out, config)
    except (data.DataError, OSError) as e:
        sys.exit(f"data.py: error: {e}")
    counts = ", ".join(f"{k} {v:,}" for k, v in meta["counts"].items())
    print(f"wrote {out}: {counts}; " + ", ".join(f"{k} {v['examples']:,}" for k, v in meta["splits"].items()))


if __name__ == "__main__":
    main()
