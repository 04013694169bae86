"""
Beyond the paper: `train.py ... --plan` prints what a run will cost (examples, steps, FLOPs, hours at the
speed of the loop's own step, timed here) without training it.
"""
import time

import numpy as np

import data
from beyond.budget import cap_steps as budget_cap
from model import GPT, GPTConfig, PRESETS


def plan(args, train):
    """--plan: the run's size and time; `train` is the train module (its model builder and timed step)."""
    task = data.load_task(args)
    T = task.batches_per_epoch
    model = GPT(model_config(args, task, train.build_model))
    config, n_params = model.config, model.get_num_params(non_embedding=False)
    mean_length = float(np.mean(task.train.seps[:task.n_train, 2] - task.train.starts[:task.n_train] + 1))
    tokens_per_step = args.batch_size * args.accumulate * mean_length     # explicit CoT: the most a step sees
    flops_per_token = 6 * n_params + 12 * config.n_layer * config.n_embd * mean_length   # PaLM's estimate
    steps = args.epochs * T // args.accumulate
    print(f"task {args.task}: {task.n_train:,} training examples, longest CoT {task.longest_train_cot} "
          f"tokens, {mean_length:.1f} tokens an example (explicit CoT)")
    print(f"T = {T} batches/epoch of {args.batch_size}; {args.epochs} epochs = {args.epochs * T:,} batches, "
          f"{steps:,} optimizer steps, {args.epochs * task.n_train:,} examples")
    cap = budget_cap(args, T) // T * T if args.stop_at_val else args.epochs * T
    if args.stop_at_val:
        print(f"stops at the first epoch end where validation at zero CoT is >= {args.stop_at_val:g}; short "
              f"of it, runs on to the cap: {cap:,} batches ({cap // T} epochs)")
    if args.mode == "stepwise" and args.schedule == "linear":
        every = max(1, int(round(T / args.delta)))
        done = args.pretrain_epochs + (task.longest_train_cot - args.remove_start_from) / args.delta
        print(f"linear s(t): a token more every {every} batches (Delta = {args.delta:g}); all CoT gone at "
              f"epoch {done:.1f} of {args.epochs}" + (" -- after the run ends" if done > args.epochs else ""))
    elif args.mode == "stepwise":
        print(f"adaptive s(t): the gate holds each token {args.gate_min_steps}-{args.gate_max_steps} steps, "
              f"all CoT gone by epoch {args.remove_by_epoch:g}")
    print(f"model: {config.n_layer} layers x {config.n_embd} ({n_params / 1e6:.2f}M parameters), "
          f"{flops_per_token * tokens_per_step / 1e12:.3f} TFLOPs a step, "
          f"{flops_per_token * tokens_per_step * steps / 1e15:.2f} PFLOPs in all")
    seconds, tokens = time_training_step(train, args, task, model)[0][0] if not args.plan_tokens_per_s \
        else ([1.0], 0)
    rate = args.plan_tokens_per_s or tokens / min(seconds)      # a busy machine slows steps, never speeds one
    hours = tokens_per_step * steps / rate / 3600
    print(f"at {rate:,.0f} training tokens/s: {hours:.2f} hours ({hours * 60:.0f} minutes) with the whole "
          f"CoT in every step, an upper bound (removal shortens the examples); evaluation not counted" +
          ("" if cap == args.epochs * T else f"; to the cap: {hours * 60 * cap / (args.epochs * T):.0f} min"))


def model_config(args, task, build_model):
    """The model's shape: GPT-2 sizes from model.PRESETS without their weights, else the model itself."""
    if args.init not in PRESETS:
        return build_model(args, task.meta, task.longest_example).config   # scratch, a .pt or a GPT-2 folder
    n_layer, n_head, n_embd = PRESETS[args.init]
    return GPTConfig(block_size=max(1024, task.longest_example), n_layer=n_layer, n_head=n_head,
                     n_embd=n_embd)


def time_training_step(train, args, task, model, steps=5, levels=(0,)):
    """Seconds of the loop's own step (train.py's: device setup, --dtype, --compile, a probe, forward,
    backward, AdamW) after warm-up, and its tokens, on a batch with each of `levels` CoT tokens removed (0:
    explicit CoT, inf: none left): what --plan and the benchmarks time. Returns ({level: (seconds, tokens)},
    the seconds of the first step, compile included)."""
    run = train.new_run(args, task, model, train.set_up_device(args))
    raw = task.train.batch(np.arange(min(args.batch_size, task.n_train)))
    forward = train.torch.compile(run.net.train(), dynamic=True) if args.compile else run.net.train()
    timed, first = {}, None
    for level in levels:
        tokens, targets, positions, *_ = train.remove_cot(raw, np.full(len(raw[0]), level), args.removal_side,
                                                         args.keep_position)
        batch, seconds = train.this_process_batch(run, raw, tokens, targets, positions), []
        for _ in range(steps + (3 if args.compile else 1)):       # the first ones warm up (and compile)
            started = time.perf_counter()
            train.forward_backward(forward, run, batch)
            if run.state.accumulated == args.accumulate:
                train.optimizer_step(run)
            if run.device.type == "cuda":
                train.torch.cuda.synchronize(run.device)
            seconds.append(time.perf_counter() - started)
        first = seconds[0] if first is None else first
        timed[level] = (seconds[-steps:], tokens.size)
    return timed, first
