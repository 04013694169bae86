"""
Beyond the paper: linear probes that steer what the residual stream holds while CoT is removed.

- `CarryProbe` (multKxK, --carry-weight W; after Bai et al. 2025, who probe the output's running sums): before
  each digit of the CoT and the output, a linear read of the stream after the second-to-last block must give
  the value behind that digit, digit + 10 x the carry it passes on.
- `BridgeProbe` (two-hop facts, --bridge-weight W; Yao et al. 2025): at the separator after the input, a
  linear read of the stream after the middle block must name the bridge entity b of (h, r1 -> b, r2 -> t).

Each is a small module that train.py's training forward runs on the GPT's hidden states (`loss`), so the probe
trains, compiles and is averaged by DDP with the model; `inputs` builds its positions and targets on the host
with the batch, as flat indices (no boolean mask on the device: no shape depends on a tensor's values, no GPU
sync). The loss adds W x the probe's loss to the language loss. A probe watches without steering (a detached
stream) until removal starts.
"""
import math

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F

import data
from beyond import twohop

IGNORE = -100


def carry_targets(tokens, k):
    """
    The value behind every CoT and output digit of K-by-K rows (data.multiplication_values: the digit + 10 x
    the carry it passes on), placed at the position that predicts the digit, NaN elsewhere. tokens: (B, L)
    rows with any number of CoT tokens removed from the left. The operands are the first 2K+1 tokens ' a * b';
    counted from the row's end, the digits left are the template's last ones.
    """
    digit_of = np.full(data.EOT + 1, -1)
    digit_of[data.DIGIT_IDS] = np.arange(10)
    digits = digit_of[tokens]
    a, b = digits[:, :k], digits[:, k + 1:2 * k + 1]
    if (a < 0).any() or (b < 0).any() or tokens.shape[1] <= 2 * k + 1:
        raise data.DataError(f"carry targets need mult{k}x{k} rows that start with ' a * b' in digits")
    values = data.multiplication_values(a, b)[0].astype(np.float64)
    is_digit = digits >= 0
    slot = values.shape[1] - np.cumsum(is_digit[:, ::-1], axis=1)[:, ::-1]   # the template slot of each digit
    computed = is_digit & (np.arange(tokens.shape[1]) > 2 * k)              # CoT and output, not the operands
    value_here = np.take_along_axis(values, np.clip(slot, 0, values.shape[1] - 1), axis=1)
    at_digit = np.where(computed, value_here, np.nan)
    targets = np.full(tokens.shape, np.nan, dtype=np.float32)    # the model's dtype: a GPU will not mix them
    targets[:, :-1] = at_digit[:, 1:]                                        # position t predicts token t+1
    return targets


def probe_targets(values):
    """The carry probe's three targets for digit values v: v in units of ten (the carry it passes on; Bai et
    al.'s running sum) and its last digit on a circle, (cos, sin)(2 pi v / 10) (the periodic form models of
    modular addition use; without it a 3x3 seed held c2's sum yet named its digit on 0.17 of examples)."""
    angle = 2 * math.pi * values / 10
    return torch.stack([values / 10, torch.cos(angle), torch.sin(angle)], dim=-1)


class Probe(nn.Linear):
    """A linear read of the residual stream after block `layer`, with its loss weight and its host-side
    targets."""

    name = None                # its loss's name in metrics.jsonl

    def __init__(self, n_embd, n_out, layer, loss_weight, steer_from_start):
        super().__init__(n_embd, n_out)
        self.layer, self.loss_weight, self.steer_from_start = layer, loss_weight, steer_from_start

    def inputs(self, before, tokens, mine, to_remove, to_device):
        """What the training forward needs for this process's rows `mine`: the flat positions with a target,
        the targets there, and whether the probe steers (from removal's start; --mode nocot: at once); and
        this process's share of the batch's targets. before: (tokens, lengths, seps) with the CoT in place."""
        targets = self.targets(before, tokens)
        has_target = self.has_target(targets)
        rows = np.flatnonzero(has_target[mine])
        share = float(has_target[mine].sum() / max(1, has_target.sum()))
        steer = self.steer_from_start or to_remove > 0
        return (to_device(rows), to_device(targets[mine].reshape(-1)[rows]), steer), share

    def read(self, states, rows, steer):
        """The probe's output at the flat positions `rows`; without steering it reads a detached stream, so
        that it learns to read the model without shaping it."""
        x = states[self.layer].flatten(0, 1).index_select(0, rows)
        return self((x if steer else x.detach()).float())


class CarryProbe(Probe):
    name = "carry_mse"

    def __init__(self, config, k, loss_weight, steer_from_start):
        super().__init__(config.n_embd, 3, max(1, config.n_layer - 1), loss_weight, steer_from_start)
        self.k = k

    def targets(self, before, tokens):
        return carry_targets(tokens, self.k)

    def has_target(self, targets):
        return ~np.isnan(targets)

    def loss(self, states, rows, values, steer=True):
        """Mean squared error at the positions `rows` whose digit values are `values`."""
        return F.mse_loss(self.read(states, rows, steer), probe_targets(values))


class BridgeProbe(Probe):
    name = "bridge_ce"

    def __init__(self, config, entity_ids, loss_weight, steer_from_start):
        super().__init__(config.n_embd, len(entity_ids), max(1, config.n_layer // 2), loss_weight,
                         steer_from_start)
        self.entity_ids = np.array(entity_ids)

    def targets(self, before, tokens):
        tokens_before, _, seps = before       # the separator comes before what was removed: same positions
        return twohop.bridge_targets(tokens_before, seps, self.entity_ids)[:, :tokens.shape[1]]

    def has_target(self, targets):
        return targets != IGNORE

    def loss(self, states, rows, bridges, steer=True):
        """Mean cross-entropy at the positions `rows` whose bridge entities are `bridges`; 0 for a batch
        without one (atomic facts only)."""
        total = F.cross_entropy(self.read(states, rows, steer), bridges, reduction="sum")
        return total / max(1, bridges.size(0))


def make_probe(args, task, config):
    """The probe the command line asks for (--carry-weight or --bridge-weight), or None."""
    nocot = args.mode == "nocot"
    if args.carry_weight:
        return CarryProbe(config, data.parse_task(args.task), args.carry_weight, nocot)
    if args.bridge_weight:
        return BridgeProbe(config, task.meta["entity_ids"], args.bridge_weight, nocot)
    return None
