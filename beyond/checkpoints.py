"""
Beyond the paper: checkpoints in the middle of an epoch (--save-every), and reading the checkpoints that
train.py wrote before the additions moved into beyond/ (they kept the probe inside the model, the gate in the
run state).
"""
import copy


class StepCheckpoints:
    """--save-every N: ckpt.pt also every N steps, at an optimizer step's boundary, not at an epoch's end; it
    keeps the epoch's RNG, so that --resume continues from the next batch of the same order, with the same
    offsets."""

    def __init__(self, every, save):
        self.every, self.save = every, save
        self.epoch_rng, self.saved_at = None, 0

    def first_batch(self, state, rng, batches_per_epoch):
        """The batch this epoch starts at: 0, or after a step checkpoint's batch, with the epoch's RNG as it
        was."""
        if not 0 < state.batch_in_epoch < batches_per_epoch:
            return 0
        rng.bit_generator.state = self.epoch_rng
        return state.batch_in_epoch

    def after_batch(self, run, rng, i):
        state = run.state
        if not (self.every and state.step - self.saved_at >= self.every and not state.accumulated
                and i < run.task.batches_per_epoch - 1):
            return
        run.meter.check_finite(state, run.folder)                # nothing is saved after a non-finite loss
        state.batch_in_epoch += 1
        self.epoch_rng, self.saved_at = rng.bit_generator.state, state.step
        self.save(run, "ckpt.pt")

    def state_dict(self):
        return {"epoch_rng": self.epoch_rng, "saved_at": self.saved_at}

    def load_state_dict(self, saved):
        self.epoch_rng, self.saved_at = saved["epoch_rng"], saved["saved_at"]


def upgrade_checkpoint(ckpt):
    """A checkpoint in the layout before beyond/ (the probe's tensors and settings inside the model's, the
    gate's state in the run state, the rollback point beside them) in today's: ckpt["additions"]. Others pass
    as they are."""
    if "additions" in ckpt:
        return ckpt
    ckpt, additions = copy.copy(ckpt), {}
    model, config, schedule = dict(ckpt["model"]), dict(ckpt["model_config"]), dict(ckpt["schedule"])
    for name in ("carry_probe", "bridge_probe"):
        tensors = {k.split(".", 1)[1]: model.pop(k) for k in list(model) if k.startswith(name + ".")}
        if tensors and ckpt["args"].get(name.replace("probe", "weight")):
            additions["probe"] = tensors
    for key in ("carry_probe_layer", "bridge_probe_layer", "bridge_classes"):
        config.pop(key, None)
    gate = {"state": schedule.pop("gate"), "last_exact_match": schedule.pop("last_exact_match"),
            "recovered_at": schedule.pop("recovered_at"), "rollback_point": ckpt.pop("rollback_point", None)}
    if ckpt["args"].get("schedule") == "adaptive":
        if gate["rollback_point"] is not None:
            point = gate["rollback_point"] = dict(gate["rollback_point"])
            new_name = lambda k: "probe." + k.split(".", 1)[1] if k.split(".")[0].endswith("_probe") \
                else "model." + k
            point["model"] = {new_name(k): v for k, v in point["model"].items()}
        additions["gate"] = gate
    steps = {"epoch_rng": schedule.pop("epoch_rng"), "saved_at": schedule.pop("saved_at")}
    if ckpt["args"].get("save_every"):
        additions["steps"] = steps
    schedule["best_level"] = None                                  # unknown: "best" goes on as it was
    schedule["logged"] = None                                      # unknown: the log is kept whole
    ckpt.update(model=model, model_config=config, schedule=schedule, additions=additions)
    return ckpt
