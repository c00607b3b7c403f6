"""What every training script shares: its command-line vocabulary (one spelling, one help text and one
default per idea), the run folder's preamble, loading a checkpoint or failing, the error exit, and the run
that ends with the best checkpoint's card.

Defaults are read from the config dataclasses (TrainConfig here, the model configs in each script), so
each is written once, and every --help shows them (HelpFormatter).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Callable

import torch

from seqmodels.cards import hardware_summary
from seqmodels.checkpoint import HUB_ID, MODELS, CheckpointError, load_model, load_tokenizer, read_config
from seqmodels.files import atomic_write_text
from seqmodels.training import OPTIMIZERS, TrainConfig, TrainingError, train, warmup_length

# model_type -> what the messages call it
MODEL_NAMES = {"charlm": "character language model", "linear-rnn-lm": "character language model",
               "transformer-lm": "character language model", "seq2seq": "translation model", "captioner": "captioning model"}


def fail(message: str) -> None:
    """Exit with a one-line message and status 2, never a traceback."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def number(kind: type = int, low: float | None = None, high: float | None = None, above: bool = False,
           below: bool = True):
    """An argparse type: a ``kind`` (int or float) no smaller than ``low`` (larger, with ``above``) and below
    ``high`` (at most ``high``, with ``below=False``) where given. A value out of range gets argparse's one-line
    usage error at once; it used to reach torch and end in a traceback, after the run folder was made."""
    what = "a whole number" if kind is int else "a number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        if low is not None and (value <= low if above else value < low):
            raise argparse.ArgumentTypeError(f"must be {'above' if above else 'at least'} {low:g}, not {text}")
        if high is not None and (value >= high if below else value > high):
            raise argparse.ArgumentTypeError(f"must be {'below' if below else 'at most'} {high:g}, not {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


COUNT = number(int, 1)  # sizes, steps, batches: one or more
NON_NEGATIVE = number(int, 0)
FRACTION = number(float, 0, 1)  # dropout and shares of the data: 0 <= x < 1


def set_threads(args) -> None:
    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)


# --------------------------------------------------------------------------- the command-line vocabulary

class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help keeps a script's docstring as written and shows every option's default (an option shows
    nothing without a help text, so every option has one); "none", "empty" and an unset flag say nothing."""

    def _get_help_string(self, action):
        unset_flag = action.nargs == 0 and action.default is False and not isinstance(action, argparse.BooleanOptionalAction)
        if action.default in (None, "") or unset_flag:
            return action.help
        return super()._get_help_string(action)


def add_command(sub, name: str, help: str) -> argparse.ArgumentParser:
    """A sub-command (train, evaluate, sample, ...) whose --help shows its defaults."""
    return sub.add_parser(name, help=help, description=help, formatter_class=HelpFormatter)


class _Deprecated(argparse.Action):
    """An old spelling kept for one release: it sets the new option's value and says so on stderr."""

    def __init__(self, option_strings, dest, new: str, **kw):
        kw.update(default=argparse.SUPPRESS, help=argparse.SUPPRESS)  # the new option owns the default and the help
        super().__init__(option_strings, dest, **kw)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"warning: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def deprecated_alias(parser: argparse.ArgumentParser, old: str, new: str, dest: str, **kw) -> None:
    """Keep the spelling ``old`` working as ``new`` (which sets ``dest``) with a warning; --help hides it.
    A flag passes ``const`` (the value it sets); an option with a value passes ``type``."""
    if "const" in kw:
        kw["nargs"] = 0
    parser.add_argument(old, dest=dest, action=_Deprecated, new=new, **kw)


def add_threads_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=NON_NEGATIVE, default=0, help="torch CPU threads (0: torch's default)")


def add_hf_args(parser: argparse.ArgumentParser, source: argparse._ActionsContainer, dataset_help: str) -> None:
    """--hf-dataset (in the group of data sources ``source``) with --hf-split and --hf-config."""
    source.add_argument("--hf-dataset", help=f"{dataset_help}: a hub name, a save_to_disk folder, or a "
                                             ".txt/.csv/.json/.jsonl/.parquet file")
    parser.add_argument("--hf-split", default="train", help="with --hf-dataset: the split to train on")
    parser.add_argument("--hf-config", default=None,
                        help="with --hf-dataset: the dataset's configuration name, if it has several")


def add_out_arg(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--out", default=default,
                        help="run folder: the best checkpoint, its card and the training log are written here")


def add_model_option(parser: argparse.ArgumentParser, flag: str, default: Any, help: str, **kw) -> None:
    """An option the model's config stores. It defaults to None, so that --resume can tell one given on the command
    line from a default (refuse_new_model_options); ``default`` waits in ``args.model_defaults`` for a new run
    (fill_unset)."""
    if kw.get("action") != "store_true":
        help = f"{help} (default: {default})"
    dest = parser.add_argument(flag, default=None, help=help, **kw).dest
    parser.set_defaults(model_defaults={**(parser.get_default("model_defaults") or {}), dest: default})


def refuse_new_model_options(args, runs: dict[str, Any], run: str, init: bool = False) -> None:
    """Exit if model options given with --resume differ from the run's (with ``init``, given with --init, from the
    starting model's): training goes on with the model as it was built, and silently training another one than the
    one asked for would mislead. ``runs`` maps each option's dest to the run's value; an option not given is None
    (add_model_option)."""
    def given(dest: str, value: Any) -> str:
        flag = "--" + dest.replace("_", "-")
        return flag if value is True else f"{flag} {value}"

    whose = "the model's" if init else "the run's"
    clashes = [f"{given(dest, value)} ({whose}: {runs[dest]})" for dest in runs
               if (value := getattr(args, dest)) is not None and value != runs[dest]]
    if clashes and init:
        fail(f"{args.init} holds {run}, and --init trains it further as it was built: drop {', '.join(clashes)}, or "
             "leave out --init to train a new model")
    if clashes:
        fail(f"{args.out} holds {run}, and --resume continues it as it was built: drop {', '.join(clashes)}, or "
             "start a new run in another folder")


def fill_unset(args) -> None:
    """Give the model options a new run left unset (None) their defaults (add_model_option)."""
    for dest, value in args.model_defaults.items():
        if getattr(args, dest) is None:
            setattr(args, dest, value)


def add_int8_arg(parser: argparse.ArgumentParser, default: bool, old: str | None = None) -> None:
    """--int8/--no-int8; ``old`` is a command's former spelling of --no-int8, kept for one release."""
    parser.add_argument("--int8", action=argparse.BooleanOptionalAction, default=default,
                        help="decode with int8 weights, as the app does (faster on a CPU; --no-int8: the float weights)")
    if old:
        deprecated_alias(parser, old, "--no-int8", dest="int8", const=False)


def add_checkpoint_arg(parser: argparse.ArgumentParser, kind: str, default: str | None = None) -> None:
    """--checkpoint: a folder, or a Hugging Face Hub model repo (load_model resolves either)."""
    parser.add_argument("--checkpoint", required=default is None, default=default,
                        help=f"{kind}'s folder, or a Hugging Face Hub model repo OWNER/NAME[@REVISION] (downloaded "
                             "once into the Hub cache; HF_HUB_OFFLINE=1 reads only the cache)")


def add_split_arg(parser: argparse.ArgumentParser, choices: list[str]) -> None:
    parser.add_argument("--split", default="all", choices=choices,
                        help="the part of the file to evaluate: all of it, or the named split as training made it")


def add_record_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--record", action="store_true",
                        help="append the result and the command to the Evaluation section of the checkpoint's card")


def add_loop_args(parser: argparse.ArgumentParser, defaults: TrainConfig | None = None,
                  steps_help: str = "optimizer steps") -> None:
    """The flags of the shared training loop, their defaults read from ``defaults`` (TrainConfig's own
    where a script does not set its own: ``TrainConfig(max_steps=..., ...)``, written once in the script)."""
    d = defaults or TrainConfig()
    parser.add_argument("--steps", type=COUNT, default=d.max_steps, help=steps_help)
    parser.add_argument("--time-budget", type=number(float, 0), default=d.time_budget_s / 60,
                        help="minutes of training, evaluation included; the schedule ends with it (0: no budget)")
    parser.add_argument("--lr", type=number(float, 0, above=True), default=d.learning_rate,
                        help="the peak learning rate (AdamW's, and Muon's with --optimizer muon)")
    parser.add_argument("--min-lr", type=number(float, 0), default=d.min_lr,
                        help="the cosine schedule's last learning rate")
    parser.add_argument("--warmup", type=NON_NEGATIVE, default=d.warmup_steps,
                        help="steps of linear warm-up (at most a tenth of --steps)")
    parser.add_argument("--weight-decay", type=number(float, 0), default=d.weight_decay,
                        help="AdamW's, on weight matrices only")
    parser.add_argument("--grad-clip", type=number(float, 0, above=True), default=d.grad_clip,
                        help="the largest global gradient norm")
    parser.add_argument("--eval-interval", type=COUNT, default=d.eval_interval,
                        help="steps between evaluations (each may save a new best checkpoint)")
    parser.add_argument("--seed", type=int, default=d.seed, help="seeds the weights, dropout and batches")
    parser.add_argument("--ema-decay", type=FRACTION, default=d.ema_decay,
                        help="evaluate and save a moving average of the weights, e.g. 0.998: lower validation loss "
                             "where a long run overfits (seqmodels/averaging.py; 0: off)")
    parser.add_argument("--optimizer", default=d.optimizer, choices=OPTIMIZERS,
                        help="muon: Muon on the hidden weight matrices, AdamW on embeddings, head, biases and norms, "
                             "one learning rate for both (seqmodels/muon.py)")
    parser.add_argument("--muon-update-rms", type=number(float, 0, above=True), default=d.muon_update_rms,
                        help="with --optimizer muon: the size of Muon's step per unit of learning rate "
                             "(0.2 matches AdamW's typical step)")
    parser.add_argument("--dtype", default=d.dtype, choices=["auto", "fp32", "bf16"],
                        help="bf16 autocast; auto uses it on GPUs with bf16 and on CPUs with bf16 instructions where a "
                             "quick probe measures bf16 matrix products faster than fp32")
    add_threads_arg(parser)
    parser.add_argument("--half", action="store_true", help="store the checkpoint's weights in fp16 (half the size)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last saved step")
    parser.add_argument("--overwrite", action="store_true",
                        help="start again in an --out that holds a run or a trained model")
    parser.add_argument("--keep-resume", action="store_true", default=d.keep_resume,
                        help="keep the resume state (resume.pt, resume.safetensors) when the run finishes, to "
                             "continue it or export its last step with train.export_last")
    parser.add_argument("--no-progress", action="store_true", default=not d.progress,
                        help="no progress bar (logs still go to metrics.jsonl)")


def train_config(args, out) -> TrainConfig:
    return TrainConfig(out_dir=str(out), max_steps=args.steps, learning_rate=args.lr, min_lr=args.min_lr,
                       warmup_steps=args.warmup, weight_decay=args.weight_decay, grad_clip=args.grad_clip,
                       eval_interval=args.eval_interval, seed=args.seed, dtype=args.dtype, resume=args.resume,
                       progress=not args.no_progress, time_budget_s=args.time_budget * 60,
                       keep_resume=args.keep_resume, ema_decay=args.ema_decay, optimizer=args.optimizer,
                       muon_update_rms=args.muon_update_rms)


def schedule_text(cfg: TrainConfig) -> str:
    """The optimiser and schedule as a card states them, with the warm-up actually used."""
    name = (f"Muon (hidden matrices, update RMS {cfg.muon_update_rms}) and AdamW" if cfg.optimizer == "muon"
            else "AdamW")
    return (f"{name} lr {cfg.learning_rate} warm-up {warmup_length(cfg)} then cosine to {cfg.min_lr}, "
            f"clip {cfg.grad_clip}" + (f", weights averaged (EMA decay {cfg.ema_decay})" if cfg.ema_decay else ""))


def script_parser(module: str, doc: str) -> tuple[argparse.ArgumentParser, Any, argparse.ArgumentParser, Any]:
    """A script's parser (``python -m module``, its docstring as the description), its sub-command group, its
    ``train`` sub-command (the default) and, in that, the required group of data sources (one of them)."""
    p = argparse.ArgumentParser(prog=f"python -m {module}", description=doc, formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="command")
    t = add_command(sub, "train", "train a model (the default command)")
    return p, sub, t, t.add_mutually_exclusive_group(required=True)


def run_script(parser: argparse.ArgumentParser, argv: list[str] | None) -> None:
    """Parse ``argv`` (``train`` being the default sub-command) and run the chosen sub-command's ``func``."""
    dispatch(parse_command_line(parser, argv))


def dispatch(args) -> None:
    """Run the chosen sub-command. A Ctrl-C outside training (which saves its state and says so itself), while
    a sample streams say, ends with one line and status 130 rather than a traceback."""
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def parse_command_line(parser: argparse.ArgumentParser, argv: list[str] | None):
    """Parse ``argv`` with ``train`` as the default sub-command (`python -m train.X --data ...` trains)."""
    import logging

    argv = list(sys.argv[1:] if argv is None else argv)
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    if not argv or argv[0] not in (*commands, "-h", "--help"):
        argv = ["train", *argv]
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args = parser.parse_args(argv)
    checkpoint = str(getattr(args, "checkpoint", ""))
    if getattr(args, "record", False) and HUB_ID.fullmatch(checkpoint) and not Path(checkpoint).is_dir():
        # the card to record into would be the Hub cache's copy, which the next download replaces
        fail(f"--record writes into the checkpoint's model card, so it needs a local folder, not the Hub repo "
             f"{checkpoint}: download it first (hf download OWNER/NAME --local-dir DIR) and evaluate that folder")
    return args


def provenance(module: str, data: str, config, half: bool) -> list[str]:
    """The card's first Training lines: the exact command, the data, the hardware and the model config."""
    fields = {k: list(v) if isinstance(v, tuple) else v for k, v in config.__dict__.items()}
    return [f"- Command: `{command_line(module)}`", f"- Data: {data}", f"- Hardware: {hardware_summary()}",
            f"- Config: `{json.dumps(fields)}`" + ("; weights stored in fp16" if half else "")]


def command_line(module: str, omit: tuple[str, ...] = ()) -> str:
    """The running command as a card records it: ``python -m module`` and its arguments, less ``omit``."""
    return f"python -m {module} " + shlex.join(a for a in sys.argv[1:] if a not in omit)


# --------------------------------------------------------------------------- run folders and checkpoints

def prepare_out(args, config_class: type | None = None) -> tuple[Any, Any] | None:
    """Check the run folder ``args.out`` before training.

    With --resume: the run's own (model config, tokenizer), not ones rebuilt from flags, or an exit that
    says why not. Otherwise None, once a folder that holds a run or a trained model has been refused
    unless --overwrite (a finished run has deleted its resume state; its model still deserves asking).
    ``config_class`` None: the class of the model the run holds (a script that trains several families).
    """
    out = Path(args.out)
    if args.resume:
        if not (out / "resume.pt").is_file():
            fail(f"nothing to resume in {out}: it has no resume.pt (a run that finished keeps its resume state "
                 "only when trained with --keep-resume)")
        try:
            saved = read_config(out)
            cls = config_class or MODELS[saved["model_type"]].config_class
            return cls(**saved["config"]), load_tokenizer(out)
        except (CheckpointError, OSError, ValueError, TypeError) as e:
            fail(f"cannot resume: {e}")
    if not args.overwrite and (out / "resume.pt").exists():
        fail(f"{out} already holds a training run; pass --resume to continue it or --overwrite to start again")
    refuse_a_used_folder(out, args.overwrite)
    return None


def refuse_a_used_folder(out: Path, overwrite: bool) -> None:
    """Exit unless ``out`` is new, empty, or holds only the log of a run stopped before its first checkpoint,
    or ``overwrite`` is given: a model or a person's own files there (a README.md, say) would be replaced."""
    if out.exists() and not out.is_dir():
        fail(f"{out} is a file, not a folder: give --out a folder for the model")
    if overwrite or not out.is_dir():
        return
    if (out / "config.json").exists():
        fail(f"{out} already holds a trained model; pass --overwrite to replace it, or choose another folder")
    others = sorted(p.name for p in out.iterdir() if p.name != "metrics.jsonl")
    if others:
        listed = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        fail(f"{out} is not empty ({listed}): choose a new folder, or pass --overwrite to write the model into this "
             "one (files with a checkpoint's names, README.md among them, are replaced)")


def load_or_fail(folder: str | Path, model_type: str | tuple[str, ...]):
    """(model, tokenizer, config dict) of the checkpoint in ``folder``, or an exit naming what is wrong,
    including a checkpoint of another kind of model; ``model_type``: one, or a tuple of those accepted."""
    try:
        model, tokenizer, config = load_model(folder)
    except CheckpointError as e:
        fail(str(e))
    accepted = (model_type,) if isinstance(model_type, str) else model_type
    if config["model_type"] not in accepted:
        fail(f"{folder} holds a {config['model_type']} model, not a {MODEL_NAMES[accepted[0]]}")
    return model, tokenizer, config


def train_and_card(model, task, cfg: TrainConfig, card: Callable[[dict, dict | None], str]) -> dict | None:
    """Run the shared loop (a TrainingError becomes a one-line exit). The loop writes the best checkpoint's
    config, weights and tokenizer; here, on rank 0, its card is written as ``card(best checkpoint's metrics,
    run summary)``, with the whole run's time and throughput, and the summary is returned; other ranks, or a
    run that saved nothing, get None. A run that fails after saving still gets its card (with no summary). A
    run stopped by Ctrl-C prints its summary and exits with status 130, as a shell reports a Ctrl-C, so that
    a script that chains commands stops there too."""
    first_rank, out = int(os.environ.get("RANK", 0)) == 0, Path(cfg.out_dir)

    def write_card(summary: dict | None) -> None:
        if not first_rank:
            return
        try:
            metrics = read_config(out)["metrics"]
        except CheckpointError:  # nothing saved (or a run that failed on its own folder): no card to write
            return
        atomic_write_text(out / "README.md", card(metrics, summary))

    try:
        summary = train(model, task, cfg)
    except TrainingError as e:
        write_card(None)
        fail(str(e))
    saved = summary["best_step"] >= 0
    if saved:
        write_card(summary)
    # the loop's log says what it kept; the flags to go on from there are the script's to name
    if first_rank and saved and summary["interrupted"]:
        logging.warning("continue with --resume")
    elif first_rank and saved and not cfg.keep_resume:
        logging.info("(--keep-resume keeps the resume state, to continue a run or export its last step)")
    if summary["interrupted"]:
        if first_rank:
            print(json.dumps(summary))
        raise SystemExit(130)
    return summary if first_rank and saved else None
