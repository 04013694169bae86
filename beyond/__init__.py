"""
What this project adds beyond the paper, beside the five files that hold it. train.py runs without this folder
(the paper alone) and, with it, calls each addition in one line marked "beyond":

- gate.py         --schedule adaptive: s(t) advances once the model has recovered; rollback after a collapse;
                  --decay-after-recovery (the lr decay waits for recovery at zero CoT)
- probes.py       --carry-weight / --bridge-weight: a linear probe on the residual stream, trained with the
                  model
- budget.py       --stop-at-val, --max-steps: stop once validation at zero CoT is >= 0.99, or at a cap
- checkpoints.py  --save-every (mid-epoch checkpoints), and the checkpoints written before this folder existed
- plan.py         --plan: what a run costs before it starts
- twohop.py       the second study's data: two-hop facts, ID and OOD (Yao et al. 2025)

This file is the interface: the additions' flags and their checks, the CPU preset's choices, --recipe, and the
objects the loop calls. It imports from the project's files but none imports it back, except train.py.
"""
import json
import math
from pathlib import Path
from types import SimpleNamespace

from beyond.budget import Budget
from beyond.checkpoints import StepCheckpoints, upgrade_checkpoint   # noqa: F401 (train.py calls it)
from beyond.gate import Gate, GateConfig
from beyond.plan import plan                                           # noqa: F401 (train.py calls it)
from beyond.probes import make_probe                                   # noqa: F401 (train.py calls it)
from data import COUNT, POSITIVE, RATE, RATE_OR_INF, WEIGHT, ranged
from model import CheckpointError

# The 3x3 CPU preset (train.py --task mult3x3 --model tiny): the adaptive gate, the carry probe and the decay
# that waits; it reaches >= 0.99 where the paper's schedule alone on a 0.6M model mostly does not (README).
# It stops once validation at zero CoT is >= 0.99, or at a cap two decay rounds beyond its 10 epochs: 14,400
# steps (budget.py; README, "Command 1": the cap).
TINY_TASKS = {"mult3x3": dict(schedule="adaptive", carry_weight=1.0, decay_after_recovery=True,
                              stop_at_val=0.99),
              "mult4x4": dict(remove_by_epoch=22)}


FRACTION = ranged(float, lambda v: 0 <= v <= 1, "a number in [0, 1]")
FLAGS = [  # as train.FLAGS: name, type (a list: choices; "bool"; "both": --x / --no-x), default, help
    ("--recipe", str, None, "start from a run's saved args.json: its settings, with this command line's "
                            "flags changing them (not its --device, --resume, --plan)"),
    ("--plan", "bool", False, "print what the run costs (steps, FLOPs, time), then stop"),
    ("--plan-tokens-per-s", RATE, None,
     "--plan: the speed to assume (default: timed steps)"),
    ("--remove-by-epoch", RATE_OR_INF, None,
     "adaptive: advance at least fast enough to have all CoT removed by the end of this epoch"),
    ("--gate-threshold", ranged(float, lambda v: 0 < v <= 1, "a number in (0, 1]"), GateConfig.threshold,
     "adaptive: advance once the running train exact match is at least this"),
    ("--gate-min-steps", POSITIVE, GateConfig.min_steps, "adaptive: steps at one s(t), at least"),
    ("--gate-max-steps", POSITIVE, GateConfig.max_steps, "adaptive: advance anyway after this"),
    ("--slower-from", ranged(float, lambda v: v >= 0, "a number >= 0 or inf"), GateConfig.slower_from,
     "adaptive: the counts from this one on get --slower-by times the deadline's steps of the others"),
    ("--slower-by", RATE, GateConfig.slower_by,
     "adaptive: see --slower-from"),
    ("--gate-collapse", FRACTION, GateConfig.collapse,
     "adaptive: a running exact match below this for --gate-patience steps rolls back"),
    ("--gate-patience", POSITIVE, GateConfig.patience, "adaptive: steps of collapse before a rollback"),
    ("--gate-max-retries", COUNT, GateConfig.max_retries, "adaptive: rollbacks per advance"),
    ("--max-chunk", POSITIVE, GateConfig.max_chunk,
     "adaptive: tokens per advance may double up to this while the model recovers at once"),
    ("--decay-after-recovery", "both", None, "adaptive: the decay starts no sooner than the running train "
     "exact match at zero CoT reaches --gate-threshold, no later than --min-decay-epochs before the end "
     "(3x3 tiny)"),
    ("--min-decay-epochs", RATE, 1.0,
     "with --decay-after-recovery: epochs the decay keeps, at least (at most --decay-epochs)"),
    ("--carry-weight", WEIGHT, None, "multKxK: weight of the carry probe's loss (beyond/probes.py, after "
                                     "Bai et al. 2025; 0: off; the 3x3 tiny preset: 1)"),
    ("--bridge-weight", WEIGHT, 0.0, "two-hop tasks: weight of the bridge probe's loss (beyond/probes.py)"),
    ("--save-every", COUNT, 0, "also write ckpt.pt every N steps, for an exact --resume mid-epoch"),
    ("--stop-at-val", FRACTION, None, "stop at the first epoch end where validation exact match at zero CoT "
     "is at least this (0: off, the run trains --epochs; the 3x3 tiny preset: 0.99)"),
    ("--max-steps", COUNT, None, "with --stop-at-val: a run short of it after --epochs runs on, in rounds "
     "of --decay-epochs epochs (each decays the lr from half the last peak), to this cap in steps "
     "(default: two rounds beyond --epochs, 14400 for 3x3 tiny; 0: none)")]


def apply_recipe(p, args, argv):
    """--recipe RUN/args.json (and, with --resume --out RUN, that run's own args.json): the saved settings,
    read through the same parser as the command line (so a recipe holds nothing a command line could not),
    become the defaults, and the command line changes them; where and how it ran (--device, --resume, --plan)
    are not the recipe."""
    path = args.recipe or (args.resume and args.out and Path(args.out) / "args.json")
    if not path or not Path(path).exists() and not args.recipe:
        return args
    flag = f"--recipe {path}" if args.recipe else f"--resume: {path}"
    try:
        recipe = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        p.error(f"{flag}: not a readable args.json ({e})")
    if not isinstance(recipe, dict):
        p.error(f"{flag}: not a JSON object of settings")
    if "stop_at_val" not in recipe:                              # written before budget.py: a fixed budget
        recipe = {**recipe, "stop_at_val": 0.0}
    unknown = sorted(set(recipe) - set(vars(args)))
    if unknown:
        p.error(f"{flag}: not settings of this train.py: {', '.join(map(str, unknown))}")
    words = []
    for action in p._actions:                                     # each saved value as the flag that sets it
        value, names = recipe.get(action.dest), action.option_strings
        if value is None or action.dest in ("device", "resume", "plan", "recipe", "overwrite", "help"):
            continue
        if action.nargs == 0:                                     # a switch: --x, or --x / --no-x
            if not isinstance(value, bool):
                p.error(f"{flag}: {action.dest} must be true or false, got {value!r}")
            words += [names[0]] if value else names[1:2]
        else:
            text = value if isinstance(value, str) else json.dumps(value).replace("Infinity", "inf")
            words += [names[0], text]
    error, p.error = p.error, lambda message: error(f"{flag}: {message}")
    saved = vars(p.parse_args(words))
    p.error = error
    p.set_defaults(**{key: saved[key] for key in recipe if recipe[key] is not None and key in saved
                      and key not in ("device", "resume", "plan", "recipe", "overwrite")})
    return p.parse_known_args(argv)[0]


def preset(args, settings):
    """The preset's settings with the additions' values: the deadline of the adaptive schedule, and the 3x3
    tiny preset's gate, probe and decay that waits."""
    settings = {**settings, "remove_by_epoch": math.inf if args.model == "paper" else 6, "carry_weight": 0.0,
                "decay_after_recovery": False, "stop_at_val": 0.0}
    return {**settings, **(TINY_TASKS.get(args.task, {}) if args.model == "tiny" else {})}


def fill_in(args, settings):
    """The additions' settings left None: the probe goes with adaptive removal from the left, and the decay
    waits for recovery only where there is one to wait for."""
    adaptive, stepwise = args.schedule == "adaptive", args.mode == "stepwise"
    if args.carry_weight is None:
        from_left = adaptive and stepwise and args.removal_side == "left"
        args.carry_weight = settings["carry_weight"] if from_left else 0.0
    if args.decay_after_recovery is None:
        args.decay_after_recovery = settings["decay_after_recovery"] and adaptive and stepwise \
            and args.decay_epochs > 0
    if args.stop_at_val is None:                              # the preset's budget, not the paper's recipe
        args.stop_at_val = settings["stop_at_val"] if adaptive and stepwise else 0.0
    if args.max_steps is None and not args.stop_at_val:
        args.max_steps = 0                                        # no budget: the cap is --epochs


def check(args, error):
    """The checks of the additions' settings that no single flag can make."""
    if not args.gate_collapse < args.gate_threshold:
        error(f"--gate-collapse ({args.gate_collapse}) must be below --gate-threshold "
              f"({args.gate_threshold})")
    if args.decay_after_recovery and (args.schedule != "adaptive" or not args.decay_epochs
                                      or not args.min_decay_epochs <= args.decay_epochs):
        error("--decay-after-recovery needs --schedule adaptive, --decay-epochs > 0 and "
              "--min-decay-epochs <= --decay-epochs")
    if args.gate_max_steps < args.gate_min_steps:
        error(f"--gate-max-steps ({args.gate_max_steps}) must be >= --gate-min-steps ({args.gate_min_steps})")
    if args.carry_weight and (not args.task.startswith("mult") or args.removal_side != "left"):
        error(f"--carry-weight is for multKxK tasks with CoT removed from the left, not {args.task} "
              f"from the {args.removal_side}")
    if args.max_steps and not args.stop_at_val:
        error("--max-steps needs --stop-at-val: without it the run trains --epochs epochs")
    if args.stop_at_val and args.mode == "explicit":
        error("--stop-at-val reads validation at zero CoT, which --mode explicit never reaches")
    if args.bridge_weight and not args.task.startswith("twohop"):
        error(f"--bridge-weight is for two-hop tasks (twohop...), not {args.task}")


def make_additions(run, new_optimizer, save_checkpoint):
    """The objects the loop calls, each None where its flag is off: the probe (already in run.net), the gate
    and the step checkpoints and the budget."""
    args = run.args
    log = lambda record: run.log(record)
    gate = Gate(args, run.task, run.net, new_optimizer, log) if args.schedule == "adaptive" else None
    steps = StepCheckpoints(args.save_every, save_checkpoint) if args.save_every else None
    budget = Budget(args, run.task.batches_per_epoch, run.task.longest_val_cot, run.log) if args.stop_at_val \
        else None
    return SimpleNamespace(probe=run.net.probe, gate=gate, steps=steps, budget=budget)


def check_resume(ckpt, additions, path):
    """--resume continues a run with the probe and the schedule it was trained with, or says which flag
    differs."""
    saved, was = ckpt.get("additions", {}), ckpt["args"]
    for key in ("carry_weight", "bridge_weight"):
        flag, kind = "--" + key.replace("_", "-"), key.split("_")[0]
        now = additions.probe is not None and additions.probe.name.startswith(kind)
        if now and not ("probe" in saved and was.get(key)):
            raise CheckpointError(f"{path} was trained without the {kind} probe: resume with {flag} 0")
        if "probe" in saved and was.get(key) and not now:
            raise CheckpointError(f"{path} was trained with the {kind} probe: resume with {flag} "
                                  f"{was[key]:g}")
    if ("gate" in saved) != (additions.gate is not None):
        schedule = "adaptive" if "gate" in saved else "linear"
        raise CheckpointError(f"{path} was trained with the {schedule} schedule: resume with --schedule "
                              f"{schedule}")
    if "steps" in saved and additions.steps is None:
        raise CheckpointError(f"{path} was saved by --save-every {was['save_every']}: resume with "
                              f"--save-every")
