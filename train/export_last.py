"""Write a run's last weights as a model folder, beside its best checkpoint.

    python -m train.export_last RUN_DIR OUT_DIR [--half] [--best] [--overwrite]

A run's folder holds its best checkpoint (model.safetensors) and the weights of its last evaluated step
(resume.safetensors), which a finished run keeps only when trained with --keep-resume. The two can differ
in what matters: a captioner's validation loss flattens while its BLEU still climbs. This copies the last
weights, with the metrics of that evaluation, into OUT_DIR so that `evaluate` can compare the two on the
dev split.
``--best`` copies the best checkpoint instead (with ``--half``: to ship a run trained without --half in fp16).
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors import safe_open

from seqmodels.checkpoint import CheckpointError, load_model, load_resume_state, save_model
from train.common import HelpFormatter, fail, refuse_a_used_folder


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m train.export_last", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("run", help="the run folder (a training command's --out)")
    p.add_argument("out", help="the model folder to write")
    p.add_argument("--half", action="store_true", help="store the weights in fp16")
    p.add_argument("--best", action="store_true", help="the run's best checkpoint, not its last step")
    p.add_argument("--overwrite", action="store_true", help="replace the model (or other files) already in OUT_DIR")
    args = p.parse_args(argv)
    run, out = Path(args.run), Path(args.out)
    if out.resolve() == run.resolve():
        fail("OUT_DIR must differ from RUN_DIR (the run's best checkpoint would be overwritten)")
    refuse_a_used_folder(out, args.overwrite)
    try:
        model, tokenizer, config = load_model(run)
    except CheckpointError as e:
        fail(str(e))
    if args.best:
        export(run, out, model, tokenizer, config["metrics"], args.half)
        return
    if not all((run / name).is_file() for name in ("resume.pt", "resume.safetensors")):
        fail(f"{run} has no resume state (resume.pt and resume.safetensors): a run that finished keeps its last "
             "step only when trained with --keep-resume (--best exports its best checkpoint)")
    try:
        state = load_resume_state(run, resume_target(run, model))
    except CheckpointError as e:
        fail(str(e))
    evals = [json.loads(line) for line in open(run / "metrics.jsonl", encoding="utf-8") if '"split": "val"' in line]
    last = next((e for e in reversed(evals) if e["step"] == state["step"]), None)
    if last is None:
        fail(f"metrics.jsonl in {run} has no evaluation at step {state['step']}, the last saved step")
    metrics = {k: v for k, v in last.items() if k != "split"}
    if "data" in config["metrics"]:
        metrics["data"] = config["metrics"]["data"]
    export(run, out, model, tokenizer, metrics, args.half)


def resume_target(run: Path, model) -> torch.nn.Module:
    """The module whose weights the run's resume state holds: a self-critical run trains its captioner inside a
    wrapper (``seqmodels.scst.SelfCritical``), so its names begin with ``captioner.``."""
    try:
        with safe_open(str(run / "resume.safetensors"), "pt") as f:
            if not any(name.startswith("captioner.") for name in f.keys()):
                return model
    except Exception:  # unreadable: load_resume_state says so, in its words
        return model
    wrapper = torch.nn.Module()
    wrapper.captioner = model
    return wrapper


def export(run: Path, out: Path, model, tokenizer, metrics: dict, half: bool) -> None:
    """Write the model folder (with the run's card and metrics log) and print the exported step's metrics."""
    out.mkdir(parents=True, exist_ok=True)
    save_model(out, model, tokenizer, metrics, half=half)
    for name in ("README.md", "metrics.jsonl"):
        if (run / name).is_file():
            shutil.copy(run / name, out / name)
    print(json.dumps({k: v for k, v in metrics.items() if k != "data"}))


if __name__ == "__main__":
    main()
