"""One training loop for every task in the project.

The loop knows nothing about characters, sentences or images. A task gives it three things:

    task.get_batch(generator) -> dict of tensors      # a training batch; model(**batch).loss is the loss
    task.evaluate(model) -> {"val_loss": ..., ...}   # called on the bare model, in eval mode
    task.save(model, folder, metrics)                  # writes the best checkpoint (seqmodels.checkpoint.CheckpointSpec)

The best checkpoint has the lowest ``val_loss``, unless the task names another figure: a task whose loss
is not what it is judged by (self-critical captioning: validation CIDEr among varied steps) sets
``select_metric = "val_select"`` and ``select_mode = "max"``, and the summary reports ``best_metric``, ``best_value`` and ``best_step``.

The loop does the rest: AdamW (or Muon on the hidden matrices: ``optimizer="muon"``), linear warm-up then cosine
decay, gradient clipping, evaluation every ``eval_interval`` steps (of a moving average of the weights where
``ema_decay`` asks for one), best-checkpoint saving, resume, Ctrl-C, seeds, a progress bar and a ``metrics.jsonl``
log; a finished run deletes its resume state unless ``keep_resume`` is set. Run unchanged under ``torchrun
--nproc_per_node N``: each process trains on its own batches, DDP averages the gradients (gloo on CPU, NCCL on GPU)
and rank 0 evaluates and saves.
"""
from __future__ import annotations

import json
import logging
import math
import random
import signal
import threading
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from .averaging import WeightAverage
from .checkpoint import CheckpointError, load_resume_state, save_resume_state
from .devices import distributed, prefers_bf16
from .muon import MuonAdamW, muon_groups

log = logging.getLogger("seqmodels.training")

OPTIMIZERS = ("adamw", "muon")  # TrainConfig.optimizer's choices


class Task(Protocol):
    """What the loop needs of a task; it may also set ``select_metric`` (default "val_loss") and
    ``select_mode`` ("min", the default, or "max") to say which checkpoint is best."""

    def get_batch(self, generator: torch.Generator) -> dict[str, torch.Tensor]: ...

    def evaluate(self, model: nn.Module) -> dict[str, float]: ...

    def save(self, model: nn.Module, folder: Path, metrics: dict[str, Any]) -> None: ...


class TrainingError(Exception):
    """Training cannot go on (diverged, nothing to resume); the message says why and what was kept."""


@dataclass
class TrainConfig:
    out_dir: str = "runs/model"
    max_steps: int = 3000
    learning_rate: float = 2e-3  # char-rnn's Adam rate; recurrent nets tolerate more than Transformers
    min_lr: float = 1e-4  # cosine decays to this, not to 0, so late steps still learn
    warmup_steps: int = 100  # Adam's moment estimates are noisy for the first steps; capped at a tenth of max_steps
    weight_decay: float = 0.01  # on matrices only; biases and norms are not decayed
    grad_clip: float = 1.0  # clip the global norm: recurrent gradients can explode (Pascanu et al. 2013)
    eval_interval: int = 250
    eval_every_s: float = 0.0  # also evaluate once this many seconds have passed since the last evaluation (0: off); a live run evaluates by the clock
    log_interval: int = 10
    seed: int = 1337
    # auto | fp32 | bf16 (autocast). auto = bf16 where the hardware computes it natively: GPUs that
    # support it, and CPUs with AVX512-BF16 or AMX, where it measured 2x faster with the same loss here
    dtype: str = "auto"
    resume: bool = False
    progress: bool = True
    # wall-clock budget in seconds, evaluation included (0: none). Training stops at the budget or at
    # max_steps, whichever comes first, and the cosine schedule follows whichever is nearer its end,
    # so a budgeted run still ends at min_lr
    time_budget_s: float = 0.0
    # a finished run deletes resume.pt and resume.safetensors (the weights again plus twice their size in
    # Adam's moments) and keeps only the best checkpoint; True keeps them, to continue the run or export its last step
    keep_resume: bool = False
    ema_decay: float = 0.0  # > 0: evaluate and save a moving average of the weights (seqmodels.averaging), e.g. 0.998
    optimizer: str = "adamw"  # adamw | muon (Muon on the hidden matrices, AdamW on the rest: seqmodels.muon)
    muon_update_rms: float = 1.0  # Muon's step size per unit of learning rate (seqmodels.muon says why 1.0)

    def __post_init__(self):
        if self.dtype not in ("auto", "fp32", "bf16"):
            raise ValueError(f"dtype must be auto, fp32 or bf16, not {self.dtype!r}")
        for name in ("max_steps", "eval_interval", "log_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be {' or '.join(OPTIMIZERS)}, not {self.optimizer!r}")
        if self.muon_update_rms <= 0:
            raise ValueError("muon_update_rms must be > 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError("ema_decay must be in [0, 1)")


def warmup_length(cfg: TrainConfig) -> int:
    """The warm-up actually used: warmup_steps, but at most a tenth of the run (and at least one step).

    A warm-up sized for a full run would take most of a short one (100 of 120 steps: 83% of a quick trial
    spent below the learning rate it asked for); a tenth still lets Adam's moments settle first.
    """
    return max(1, min(cfg.warmup_steps, cfg.max_steps // 10))


def lr_at(step: int, cfg: TrainConfig, time_fraction: float = 0.0) -> float:
    """Linear warm-up to learning_rate, then cosine decay to min_lr at max_steps (or at the time budget)."""
    warmup = warmup_length(cfg)
    if step < warmup:
        return cfg.learning_rate * (step + 1) / warmup
    progress = max((step - warmup) / max(1, cfg.max_steps - warmup), time_fraction)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))) * (cfg.learning_rate - cfg.min_lr)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _autocast(cfg: TrainConfig, device: torch.device):
    if cfg.dtype == "fp32" or (cfg.dtype == "auto" and not prefers_bf16(device)):
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    if cfg.optimizer == "muon":
        return MuonAdamW(muon_groups(model, decay, no_decay, cfg.weight_decay), lr=cfg.learning_rate,
                         betas=(0.9, 0.99), update_rms=cfg.muon_update_rms)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(0.9, 0.99), fused=device.type == "cuda")


class _MetricsLog:
    """Appends one JSON object per line to metrics.jsonl; the app plots these curves. ``on_event`` sees
    each record as it is written (see ``train``) and may ask the run to stop."""

    def __init__(self, path: Path, fresh: bool, on_event=None, total_steps: int = 0):
        self.on_event, self.total_steps, self.stop_requested = on_event, total_steps, False
        self.path = path
        if fresh and path.exists():
            path.unlink()

    def write(self, **record) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        self.notify(record)

    def notify(self, record: dict) -> None:
        if self.on_event is not None and self.on_event({**record, "total_steps": self.total_steps}):
            self.stop_requested = True


def _count_tokens(task, batch: dict[str, torch.Tensor]) -> int:
    """Tokens a batch trains on, for the tokens/s figure: the task says (padding excluded), or the first tensor's size."""
    count = getattr(task, "count_tokens", None)
    return int(count(batch)) if count is not None else batch[next(iter(batch))].numel()


def _scalars(output) -> dict[str, float]:
    """The one-number fields a model's output has besides its loss (self-critical training: the mean reward),
    for the training log."""
    fields = getattr(output, "_fields", ())
    return {name: round(float(value), 4) for name in fields if name != "loss"
            for value in [getattr(output, name)] if isinstance(value, torch.Tensor) and value.numel() == 1}


def _selection(task) -> tuple[str, str]:
    """The figure the best checkpoint is chosen by, and whether lower or higher is better."""
    metric, mode = getattr(task, "select_metric", "val_loss"), getattr(task, "select_mode", "min")
    if mode not in ("min", "max"):
        raise ValueError(f"select_mode must be 'min' or 'max', not {mode!r}")
    return metric, mode


def _remove_resume_state(folder: Path) -> None:
    """Delete what ``save_resume_state`` writes."""
    for name in ("resume.pt", "resume.safetensors"):
        (folder / name).unlink(missing_ok=True)


def train(model: nn.Module, task: Task, cfg: TrainConfig,
          on_event: Callable[[dict[str, Any]], bool | None] | None = None) -> dict[str, Any]:
    """Train ``model`` on ``task``; return a summary (the best checkpoint's metric, value and step, steps,
    time, tokens/s).

    ``on_event`` (rank 0 only) watches the run live: it gets every record written to metrics.jsonl (a
    training record every ``log_interval`` steps, a validation record after each evaluation) with
    ``"total_steps"`` added, and ``{"split": "step", "step": n}`` before every step; when it returns True the
    run stops as at the end of its time budget: one last evaluation, the best checkpoint kept, and the
    summary says ``"stopped"``. The Train tab drives its curves, samples and Stop button with it. Single
    process only: under torchrun the other ranks would not see the stop.
    """
    select_metric, select_mode = _selection(task)
    improves = (lambda value, best: value < best) if select_mode == "min" else (lambda value, best: value > best)
    ddp, rank, world, device = distributed()
    master = rank == 0
    out = Path(cfg.out_dir)
    if master:
        out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed + rank)  # each process its own dropout masks and batches
    model.to(device)
    optimizer = _optimizer(model, cfg, device)
    average = WeightAverage(model, cfg.ema_decay) if cfg.ema_decay > 0 and master else None

    start_step, best_step, elapsed_before = 0, -1, 0.0
    best_value = math.inf if select_mode == "min" else -math.inf
    if cfg.resume:
        try:
            state = load_resume_state(out, model)
        except CheckpointError as e:
            raise TrainingError(str(e)) from None
        saved_optimizer = state.get("train_config", {}).get("optimizer", "adamw")  # older states: all AdamW
        if saved_optimizer != cfg.optimizer:
            raise TrainingError(f"the run in {out} was trained with --optimizer {saved_optimizer}; resume it with "
                                f"the same optimizer, or start again with --overwrite")
        optimizer.load_state_dict(state["optimizer"])
        if average is not None and "weight_average" in state:  # else it starts from the resumed weights
            average.load_state_dict(state["weight_average"])
        start_step, best_step = state["step"], state["best_step"]
        if "best_value" in state:
            best_value = state["best_value"]
        else:  # resume state written before select_metric: "best_val" held the lowest val_loss, or minus the
            # metric of a task that maximised one (it returned that as "select")
            best_value = state["best_val"] if select_mode == "min" else -state["best_val"]
        elapsed_before = state.get("elapsed_s", 0.0)
        if world == 1:
            torch.set_rng_state(state["torch_rng"])
        else:
            torch.manual_seed(cfg.seed + rank + 7919 * start_step)
        log.info("resumed from %s at step %d (best %s %.4f at step %d)", out, start_step, select_metric,
                 best_value, best_step)

    raw_model = model
    if ddp:
        model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    metrics_log = _MetricsLog(out / "metrics.jsonl", fresh=not cfg.resume, on_event=on_event,
                              total_steps=cfg.max_steps) if master else None
    data_gen = torch.Generator()
    autocast = _autocast(cfg, device)
    tokens_per_step, tokens_total = 0, 0

    def save_resume(step: int) -> None:
        if not master:
            return
        save_resume_state(out, raw_model, {
            "optimizer": optimizer.state_dict(), "step": step, "best_metric": select_metric,
            "best_value": best_value, "best_step": best_step,
            "elapsed_s": elapsed_before + time.time() - t_start, "torch_rng": torch.get_rng_state(),
            "train_config": asdict(cfg), **({"weight_average": average.state_dict()} if average else {}),
        })

    last_eval = -1

    last_eval_time = time.time()

    def evaluate_and_save(step: int) -> None:
        nonlocal best_value, best_step, last_eval, last_eval_time
        last_eval = step
        if not master:
            return
        raw_model.eval()
        with average.applied() if average else nullcontext():  # the average is what is judged and kept
            with torch.no_grad(), autocast:
                metrics = task.evaluate(raw_model)
            if select_metric not in metrics:
                raise TrainingError(f"the task's evaluation gives no {select_metric!r} to choose the best checkpoint "
                                    f"by (it gives {', '.join(metrics) or 'nothing'})")
            value = metrics[select_metric]
            elapsed = elapsed_before + time.time() - t_start
            metrics_log.write(step=step, split="val", elapsed_s=round(elapsed, 1), **metrics)
            if improves(value, best_value):
                best_value, best_step = value, step
                task.save(raw_model, out, {**metrics, "step": step, "elapsed_s": round(elapsed, 1)})
        raw_model.train()
        save_resume(step)
        if bar is not None:
            bar.write(f"step {step}: {select_metric} {value:.4f} (best {best_value:.4f} at step {best_step})")
        last_eval_time = time.time()  # the clock counts from the end of an evaluation: training time between them

    bar = None
    if master and cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.max_steps, initial=start_step, unit="step", dynamic_ncols=True)
    model.train()
    t_start = t_log = time.time()
    tokens_since_log, step, out_of_time, stopped = 0, start_step, False, False
    # a SIGTERM (a cluster ending a job, `kill`) saves the run as Ctrl-C does; signals reach the main thread only
    main_thread = threading.current_thread() is threading.main_thread()
    sigterm = signal.signal(signal.SIGTERM, signal.default_int_handler) if main_thread else None
    try:
        for step in range(start_step, cfg.max_steps):
            # a resumed run already evaluated its first step before it stopped
            due_by_clock = cfg.eval_every_s > 0 and time.time() - last_eval_time >= cfg.eval_every_s
            if step == 0 or (step != start_step and (step % cfg.eval_interval == 0 or due_by_clock)):
                evaluate_and_save(step)
            if master and on_event is not None:
                metrics_log.notify({"split": "step", "step": step})
                if metrics_log.stop_requested:  # a watcher's Stop: end as a spent time budget does
                    out_of_time = stopped = True
                    break
            # batches are a function of (seed, rank, step), so a resumed run reads what the old one would have
            data_gen.manual_seed(cfg.seed * 1_000_003 + rank * 7919 + step)
            batch = {k: v.to(device, non_blocking=True) for k, v in task.get_batch(data_gen).items()}
            time_fraction = 0.0
            if cfg.time_budget_s > 0:
                spent = torch.tensor([(elapsed_before + time.time() - t_start) / cfg.time_budget_s])
                if ddp:  # rank 0's clock decides for all: the same learning rate everywhere, the same last step
                    dist.broadcast(spent, 0)
                time_fraction = float(spent)
                if time_fraction >= 1.0:
                    out_of_time = True
                    break
            lr = lr_at(step, cfg, time_fraction)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast:
                output = model(**batch)
            loss = output.loss
            loss.backward()
            # clip_grad_norm_ returns the norm before clipping; DDP has already averaged the gradients,
            # so every process sees the same value and stops together
            norm = nn.utils.clip_grad_norm_(raw_model.parameters(), cfg.grad_clip)
            if not torch.isfinite(norm):
                raise TrainingError(
                    f"loss became {loss.item()} at step {step} (gradient norm {norm.item()}); stopped. "
                    f"The last good checkpoint in {out} (step {best_step}) is kept; "
                    "try a lower learning rate or a smaller gradient clip, then resume or start again"
                )
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if average is not None:
                average.update()
            tokens_per_step = _count_tokens(task, batch) * world
            tokens_since_log += tokens_per_step
            tokens_total += tokens_per_step
            if (step + 1) % cfg.log_interval == 0 and master:
                now = time.time()
                tps = tokens_since_log / max(now - t_log, 1e-9)
                loss_value = loss.item()
                metrics_log.write(step=step + 1, split="train", loss=round(loss_value, 4), lr=lr,
                                  grad_norm=round(norm.item(), 3), tokens_per_s=round(tps),
                                  elapsed_s=round(elapsed_before + now - t_start, 1), **_scalars(output))
                if bar is not None:
                    bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.1e}", tok_s=f"{tps:,.0f}")
                t_log, tokens_since_log = now, 0
            if bar is not None:
                bar.update(1)
        if not out_of_time:
            step = cfg.max_steps
        if last_eval != step:  # a budget can run out just after an evaluation
            evaluate_and_save(step)
        if ddp:
            # rank 0 writes the final checkpoint while the others would already tear down gloo; a rank that
            # destroys its group while a peer is still connected can abort ("terminate called without an
            # active exception"), so every rank leaves together
            dist.barrier()
        if master and not cfg.keep_resume:
            _remove_resume_state(out)
            log.info("finished: removed the resume state (resume.pt, resume.safetensors) from %s; the best checkpoint "
                     "stays", out)
    except KeyboardInterrupt:
        if best_step < 0:  # stopped in the first evaluation: no checkpoint (config.json), so nothing could resume
            if master:
                _remove_resume_state(out)
            log.warning("interrupted at step %d, before the first checkpoint was saved: nothing was kept in %s; start "
                        "the run again", step, out)
        else:
            save_resume(step)
            log.warning("interrupted at step %d: saved resume state in %s", step, out)
    finally:
        if sigterm is not None:
            signal.signal(signal.SIGTERM, sigterm)
        if bar is not None:
            bar.close()
        if ddp and dist.is_initialized():
            dist.destroy_process_group()
    elapsed = elapsed_before + time.time() - t_start
    return {
        "best_metric": select_metric, "best_value": best_value, "best_step": best_step, "steps": step, "elapsed_s": round(elapsed, 1),
        "tokens_per_s": round(tokens_total / max(time.time() - t_start, 1e-9)),
        "world_size": world, "interrupted": step < cfg.max_steps and not out_of_time, "out_of_time": out_of_time and not stopped,
        "stopped": stopped,
    }
