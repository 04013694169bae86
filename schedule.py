"""
The Stepwise Internalization schedule (Deng, Choi & Shieber 2024, Sec. 3), as the paper's code discretizes it.
It imports nothing from this project (numpy only): copy it alone.

Pure functions: how many CoT tokens are scheduled for removal at a step (the paper's linear s(t)), the random
removal offset of every example (removal smoothing), when the optimizer is reset, and -- the one place where
CoT tokens are actually removed -- `remove_cot`, which train.py and eval.py both call. In a training loop of
your own (a nanoGPT-style model, any vocabulary; rows of `input <sep> cot <sep> answer <sep>`, right-padded,
with the separators' positions in `seps`; here 8 tokens go every 100 steps):

    s, all_removed, rng = 0, False, np.random.default_rng(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for step in range(max_steps):
        previous, s = s, scheduled_to_remove(step, 100, 8)                    # 1. s(t) = Delta t / T
        if should_reset(s, previous, all_removed):                            # 2. a fresh AdamW as s(t) grows
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        tokens, lengths, seps = get_batch()
        n = s + sample_offsets(4.0, len(tokens), rng)                         # 3. s(t) + o, o ~ P(o), per row
        tokens, targets, _, _, _, reaches_end = remove_cot((tokens, lengths, seps), n, pad_id=PAD, ignore=-1)
        all_removed = bool(reaches_end.all())
        logits, loss = model(torch.from_numpy(tokens), torch.from_numpy(targets))   # 4. nanoGPT's targets
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
"""
import math

import numpy as np

EOT = 50256              # GPT-2's <|endoftext|>: the separator, also the padding id (as the reference pads)
IGNORE = -100            # label of positions without a loss (F.cross_entropy's default ignore_index)


def steps_per_token(batches_per_epoch, delta):
    """Reference: steps_per_removed_token = int(round(T / Delta)) with T = ceil(examples / batch) batches
    per epoch. Python's round() rounds halves to even, like the reference (T=100, Delta=8 -> 12)."""
    return int(round(batches_per_epoch / delta))


def scheduled_to_remove(batch, batches_per_epoch, delta, start_from=0, remove_all_beyond=math.inf):
    """Paper: s(t) = Delta * t / T, the CoT tokens scheduled for removal at step t. Reference: s grows by one
    every round(T/Delta) batches, s(b) = start_from + b // round(T/Delta) (one token a batch when that is 0).
    batch: t, the 0-based step counted from removal's start (train.py: after its --pretrain-epochs);
    batches_per_epoch: T, the steps in which Delta tokens go (an epoch in the paper; a loop without epochs
    passes any number of steps); delta: Delta; start_from: s at t = 0; remove_all_beyond: from this count on,
    inf (remove all)."""
    every = steps_per_token(batches_per_epoch, delta)
    to_remove = start_from + (batch // every if every > 0 else batch + 1)
    return math.inf if to_remove >= remove_all_beyond else to_remove


def offset_distribution(lam, truncate=100):
    """Removal smoothing: P(o) = (1 - e^-lambda) e^(-lambda o) for o = 0..99, the leftover mass on o = 99.
    lambda = inf: o = 0 always."""
    if lam < 0 or math.isnan(lam):
        raise ValueError(f"smoothing lambda must be >= 0 or inf, got {lam}")
    p = np.zeros(truncate)
    if math.isinf(lam):
        p[0] = 1.0
        return p
    p[:] = (1 - math.exp(-lam)) * np.exp(-lam * np.arange(truncate))
    p[-1] += 1 - p.sum()
    return np.maximum(p, 0)                    # lambda >~ 0.4: the leftover, ~1e-30, may round below 0


def sample_offsets(lam, batch_size, rng):
    """Each example draws its own offset o ~ P(o)."""
    if math.isinf(lam):
        return np.zeros(batch_size, dtype=np.int64)
    p = offset_distribution(lam)
    return rng.choice(len(p), size=batch_size, p=p)


def should_reset(to_remove, previous, all_removed_in_previous_batch, reset_enabled=True):
    """Reference: a fresh AdamW whenever s(t) grows, unless every example of the previous batch already
    had all of its CoT removed (then nothing new is being removed)."""
    return reset_enabled and to_remove > previous and not all_removed_in_previous_batch


def remove_cot(batch, n_remove, side="left", keep_position=False, pad_id=EOT, ignore=IGNORE):
    """
    Remove n_remove[i] CoT tokens from every example of a right-padded batch, vectorized.

    batch: (tokens, lengths, seps): (B, L) ids, (B,) lengths, (B, 3) positions of the three separators in each
    row; n_remove: (B,) counts (inf = all). Left side removes the n tokens right after the first separator,
    right side the n tokens right before the second; n is clipped to the CoT, separators always stay. Padding
    is pad_id (default GPT-2's <|endoftext|>, as the reference pads). Targets follow nanoGPT's convention:
    targets[t] is the token after tokens[t] (`ignore` where that token is not after the first separator, and
    on padding). A nanoGPT model takes them as they are, model(tokens, targets) with ignore=-1; a Hugging Face
    model wants them unshifted, labels = targets rolled one to the right. Returns tokens, targets,
    position_ids (None unless keep_position), the new lengths and separators, and per row whether the removed
    span reaches the second separator: the reference's test for "all CoT removed", true on the left side once
    all CoT is gone and, as in the reference, always true on the right side.

    Keep-position (reference: position_ids[start-1:] += n): the tokens after the removed span keep their
    original positions, and so does the one token right before the span (the first separator on the left
    side), which moves with them.
    """
    tokens, lengths, seps = batch
    B, L = tokens.shape
    cot_length = seps[:, 1] - seps[:, 0] - 1
    n = np.minimum(np.asarray(n_remove, dtype=np.float64), cot_length).astype(np.int64)
    start = seps[:, 0] + 1 if side == "left" else seps[:, 1] - n
    column = np.arange(L)
    removed = (column >= start[:, None]) & (column < start[:, None] + n[:, None])
    kept = ~removed & (column < lengths[:, None])
    order = np.argsort(~kept, axis=1, kind="stable")                   # kept columns first, in order
    new_lengths = lengths - n
    width = int(new_lengths.max())
    is_padding = column[:width] >= new_lengths[:, None]
    new_tokens = np.take_along_axis(tokens, order[:, :width], axis=1)
    new_tokens[is_padding] = pad_id
    new_seps = seps - np.stack([np.zeros_like(n), n, n], axis=1)
    targets = np.full_like(new_tokens, ignore)                         # position t predicts token t + 1
    labelled = (column[1:width] > new_seps[:, :1]) & ~is_padding[:, 1:]      # after the first separator
    targets[:, :-1] = np.where(labelled, new_tokens[:, 1:], ignore)
    position_ids = None
    if keep_position:
        position_ids = column[:width] + np.where(column[:width] >= start[:, None] - 1, n[:, None], 0)
        position_ids = np.where(is_padding, column[:width], position_ids)   # padding: any in-range position
    return new_tokens, targets, position_ids, new_lengths, new_seps, start + n == seps[:, 1]
