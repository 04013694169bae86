"""
Beyond the paper, which trains a fixed number of epochs: --stop-at-val and --max-steps, the CPU preset's
budget.
The run stops at the first epoch end where validation exact match at zero CoT (all CoT removed) is at least
--stop-at-val. A run still short of it when its --epochs end runs on, in rounds of --decay-epochs epochs, up
to the cap of --max-steps. Each round restarts the lr at half the last round's peak and decays it to 0 over
the whole round. (On the preset's seeds 0-10 the last stretch to 0.99 came while the lr decayed; on seed 21
a restart at the full lr, held until the round's last epoch, set validation back: README, "Command 1".)

Everything here is a function of the flags and the RunState, so --resume continues a run across a round's
end, and a run resumed after it stopped has nothing left to do.
"""
from data import DataError

ROUNDS = 2      # the preset's cap: two decay rounds beyond --epochs (14,400 steps for 3x3 tiny: README)
ROUND_PEAK = 0.5    # each round starts at half the last one's peak lr, and decays over all of it (README)


def cap_steps(args, batches_per_epoch):
    """--max-steps, or (unset) --epochs and ROUNDS more rounds of --decay-epochs; 0: --epochs alone."""
    first_end = args.epochs * batches_per_epoch
    if args.max_steps is None:
        return first_end + ROUNDS * max(1, args.decay_epochs) * batches_per_epoch
    return args.max_steps or first_end


class Budget:
    def __init__(self, args, batches_per_epoch, longest_val_cot, log):
        self.threshold, self.zero_cot, self.log = args.stop_at_val, longest_val_cot, log
        self.T = batches_per_epoch
        self.said = False                                         # a resumed run's stop, said once
        self.first_end = args.epochs * batches_per_epoch          # the first round: the run's --epochs
        self.round = max(1, args.decay_epochs) * batches_per_epoch
        self.cap_epochs = cap_steps(args, batches_per_epoch) // batches_per_epoch   # whole epochs
        if self.cap_epochs < args.epochs:
            raise DataError(f"--max-steps {args.max_steps}: below the {self.first_end:,} steps of --epochs "
                            f"{args.epochs} ({batches_per_epoch} batches an epoch)")

    def reached(self, state):
        """Validation exact match at zero CoT, at the last epoch's end, is at least --stop-at-val. ("Best"
        restarts when the CoT removed changes: at zero CoT it is the best validation since all CoT went.)"""
        return state.best_level is not None and state.best_level >= self.zero_cot \
            and state.best_val >= self.threshold

    def last_epoch(self, state):
        """The loop's end: the cap's epoch, or, for a run resumed after it stopped, the epoch it is at (its
        stop record, cut from the log by --resume with what came after the checkpoint, is written again)."""
        reason = self.stop_reason(state, state.epoch - 1)
        if reason and not self.said:
            self.said = True
            self.log({"event": "stop", "step": state.step, "epoch": state.epoch - 1, "reason": reason},
                     f"train.py: nothing to resume, the run stopped at step {state.step:,}: {reason}" +
                     ("" if self.reached(state) else "; a higher --max-steps runs it on"))
        return state.epoch if reason else self.cap_epochs

    def lr_factor(self, seen):
        """The lr, as a fraction of --lr, at batch `seen` past --epochs: round r (1, 2, ...) starts at
        ROUND_PEAK**r and decays linearly to 0 over its --decay-epochs epochs (the last cut at the cap)."""
        r = (seen - self.first_end) // self.round + 1
        start = self.first_end + (r - 1) * self.round
        end = min(start + self.round, self.cap_epochs * self.T)
        return ROUND_PEAK ** r * (end - seen) / (end - start)

    def stop_reason(self, state, epoch):
        """Why the run stops at the end of `epoch`, or None where it goes on."""
        if self.reached(state):
            return f"validation exact match {state.best_val:.3f} >= {self.threshold:g} at zero CoT"
        if epoch + 1 >= self.cap_epochs:
            return f"the cap, {self.cap_epochs * self.T:,} steps, short of --stop-at-val {self.threshold:g}"
        return None

    def after_epoch(self, state):
        """After validation: True, with the reason in metrics.jsonl, where the run stops at this epoch."""
        reason = self.stop_reason(state, state.epoch)
        if reason:
            self.log({"event": "stop", "step": state.step, "epoch": state.epoch, "reason": reason},
                     f"train.py: stopped at step {state.step:,}: {reason}" + ("" if self.reached(state) else
                     f" (best validation {state.best_val:.3f}); --resume with a higher --max-steps goes on"))
        return bool(reason)

    def state_dict(self):                                  # stateless: the RunState holds what it reads
        return {}

    def load_state_dict(self, saved):
        pass
