"""The probes of beyond/probes.py: their targets, what they read, and that they can only watch."""
import math

import numpy as np
import pytest
import torch

import data
from beyond.probes import BridgeProbe, CarryProbe, carry_targets, probe_targets
from model import EOT, GPT, GPTConfig
from test_data import operands


def test_carry_targets_of_a_hand_worked_example():
    """58 * 78, '8 5 * 8 7||4 6 4 + 0 6 0 4 #### 4 2 5 4': 58 * 8 column by column is 8*8 = 64, 5*8 + 6 = 46,
    then the carry 4; 58 * 70 is 0, 8*7 = 56, 5*7 + 5 = 40, 4; the product's columns (Bai et al.'s running
    sums) are 8*8 = 64, 5*8 + 8*7 + 6 = 102, 5*7 + 10 = 45, then the carry 4."""
    from schedule import remove_cot
    a, b = np.array([[8, 5]], np.uint8), np.array([[8, 7]], np.uint8)
    tokens = data.multiplication_tokens(a, b, data.tokenizer()).astype(np.int64)
    expected = [64, 46, 4, 0, 56, 40, 4, 64, 102, 45, 4]
    targets = carry_targets(tokens, 2)
    # the model's dtype: a float64 target broke backward on CUDA
    assert targets.dtype == np.float32
    has_target = ~np.isnan(targets[0])
    assert targets[0][has_target].tolist() == expected
    # before each digit
    assert (tokens[0][1:][has_target[:-1]] == data.DIGIT_IDS[np.array(expected) % 10]).all()
    seps = np.flatnonzero(tokens[0] == data.EOT)[None]
    removed = remove_cot((tokens, np.array([tokens.shape[1]]), seps), np.array([3]))[0]        # '4 6 4' gone
    assert carry_targets(removed, 2)[0][~np.isnan(carry_targets(removed, 2)[0])].tolist() == expected[3:]


@pytest.mark.parametrize("n_remove", [0, 7, math.inf])
def test_carry_targets_sit_before_every_cot_and_output_digit(mult3x3, n_remove):
    """With any number of CoT tokens removed: a target before every CoT digit left and every output digit,
    target % 10 is that digit, and the output's values spell the product with their carries."""
    from schedule import remove_cot
    split = data.load_split(mult3x3, "train")
    tokens, lengths, seps = split.batch(np.arange(64))
    tokens, _, _, _, seps, _ = remove_cot((tokens, lengths, seps), np.full(64, n_remove))
    targets = carry_targets(tokens, 3)
    digit_of = np.full(data.EOT + 1, -1)
    digit_of[data.DIGIT_IDS] = np.arange(10)
    is_digit = digit_of[tokens] >= 0
    after_first_separator = np.arange(tokens.shape[1]) > seps[:, :1]
    assert (~np.isnan(targets[:, :-1]) == (is_digit & after_first_separator)[:, 1:]).all()
    rows, columns = np.nonzero(~np.isnan(targets))
    assert (targets[rows, columns].astype(int) % 10 == digit_of[tokens[rows, columns + 1]]).all()
    output = np.stack([targets[i][~np.isnan(targets[i])][-6:] for i in range(64)]).astype(int)
    a, b = operands((mult3x3 / "train.txt").read_text().splitlines()[:64])
    powers = 10 ** np.arange(3)
    assert ((output % 10) @ 10 ** np.arange(6) == (a @ powers).astype(int) * (b @ powers).astype(int)).all()
    assert (output[:, -1] < 10).all()                                  # the last column passes no carry on


def test_carry_targets_need_digit_operands(mult3x3):
    tokens, _, _ = data.load_split(mult3x3, "train").batch(np.arange(2))
    with pytest.raises(data.DataError, match="mult4x4 rows that start with ' a \\* b'"):
        carry_targets(tokens, 4)                             # a 4x4 reading of 3x3 rows meets the '*'


def test_carry_probe_reads_the_stream_before_the_last_block_where_there_are_values_and_can_only_watch():
    torch.manual_seed(0)
    m = GPT(GPTConfig(block_size=16, n_layer=3, n_head=2, n_embd=16, vocab_ids=list(range(20)) + [EOT]))
    probe = CarryProbe(m.config, k=3, loss_weight=1.0, steer_from_start=False)
    assert probe.layer == 2
    idx = torch.tensor([[1, 2, EOT, 5, 6, EOT, 7, EOT]] * 2)
    # positions (0, 5) and (1, 6) of 2 x 8
    rows, values = torch.tensor([5, 8 + 6]), torch.tensor([27.0, 4.0])
    probe_loss = probe.loss(m.hidden_states(idx), rows, values)
    stream = m.residual_stream(idx)[2]                                  # after blocks 1 and 2 of 3
    read = probe(torch.stack([stream[0, 5], stream[1, 6]]))
    wanted = torch.tensor([[2.7, -0.309017, -0.951057],    # 27: 2.7 tens, digit 7 at 252 degrees
                           [0.4, -0.809017, 0.587785]])    # 4: 0.4 tens, digit 4 at 144 degrees
    assert torch.allclose(probe_loss, ((read - wanted) ** 2).mean(), atol=1e-5)
    probe_loss.backward()
    assert probe.weight.grad.abs().sum() > 0 and m.transformer.h[0].attn.c_attn.weight.grad.abs().sum() > 0
    assert m.transformer.h[2].mlp.c_fc.weight.grad is None              # the last block is not read
    m.zero_grad()
    probe.loss(m.hidden_states(idx), rows, values, steer=False).backward()   # watching: only the probe learns
    assert probe.weight.grad.abs().sum() > 0 and m.transformer.h[0].attn.c_attn.weight.grad is None


def test_probe_targets_put_values_with_the_same_last_digit_on_the_same_point_of_the_circle():
    targets = probe_targets(torch.tensor([0.0, 3.0, 13.0, 103.0, 5.0]))
    assert torch.allclose(targets[:, 0], torch.tensor([0.0, 0.3, 1.3, 10.3, 0.5]))
    assert torch.allclose(targets[1, 1:], targets[2, 1:], atol=1e-5)           # 3, 13 and 103: digit 3
    assert torch.allclose(targets[1, 1:], targets[3, 1:], atol=1e-5)
    assert torch.allclose(targets[0, 1:], torch.tensor([1.0, 0.0]))            # digit 0 at 0 degrees
    assert torch.allclose(targets[4, 1:], torch.tensor([-1.0, 0.0]), atol=1e-6)  # digit 5 at 180 degrees


def test_bridge_probe_reads_the_middle_block_at_marked_positions_and_can_only_watch():
    torch.manual_seed(0)
    m = GPT(GPTConfig(block_size=16, vocab_size=50, n_layer=4, n_head=2, n_embd=32))
    probe = BridgeProbe(m.config, entity_ids=list(range(7)), loss_weight=1.0, steer_from_start=False)
    assert probe.layer == 2 and probe.weight.shape == (7, 32)
    idx = torch.randint(0, 50, (2, 10))
    # positions (0, 4) and (1, 3) of 2 x 10
    rows, bridges = torch.tensor([4, 10 + 3]), torch.tensor([5, 2])
    probe_loss = probe.loss(m.hidden_states(idx), rows, bridges)
    x = m.embed(idx)
    for block in m.transformer.h[:2]:
        x = block(x)
    read = probe(torch.stack([x[0, 4], x[1, 3]]))
    assert torch.allclose(probe_loss, torch.nn.functional.cross_entropy(read, torch.tensor([5, 2])),
                          atol=1e-5)
    probe_loss.backward()
    assert probe.weight.grad.abs().sum() > 0 and m.transformer.h[0].attn.c_attn.weight.grad.abs().sum() > 0
    assert m.transformer.h[3].attn.c_attn.weight.grad is None                   # above the probe: no gradient
    m.zero_grad(set_to_none=True)
    probe.zero_grad(set_to_none=True)
    probe.loss(m.hidden_states(idx), rows, bridges, steer=False).backward()
    assert probe.weight.grad.abs().sum() > 0 and m.transformer.h[0].attn.c_attn.weight.grad is None
    none = probe.loss(m.hidden_states(idx), torch.zeros(0, dtype=torch.long),
                      torch.zeros(0, dtype=torch.long))                        # a batch of atomic facts only
    assert none.item() == 0
