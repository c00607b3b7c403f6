"""Train, evaluate and sample character-level language models (vanilla RNN, LSTM, GRU).

    python -m train.charlm --text input.txt --cell lstm --out runs/my-lstm        # train
    python -m train.charlm --hf-dataset NAME --text-column text --out runs/hf-lstm  # train on a HF dataset
    python -m train.charlm evaluate --checkpoint checkpoints/charlm-lstm --text other.txt
    python -m train.charlm sample --checkpoint checkpoints/charlm-lstm --prime "ROMEO:" --length 300

Training splits the text like nanoGPT: the first 90% trains, the last 10% validates. Several GPUs or
machines: `torchrun --nproc_per_node 4 -m train.charlm --text input.txt ...` (each process reads its own
random batches; the effective batch is batch-size x processes).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import shlex
import sys
import time
from pathlib import Path

import torch

from seqmodels.charlm import CELLS, CharLM, CharLMConfig, PromptError, encode_prompt
from seqmodels.checkpoint import (CheckpointError, atomic_write_text, hardware_summary, load_model, load_tokenizer,
                                  read_config, save_model)
from seqmodels.data import CharLMTask, DataError, load_hf_text, read_text, split_ids, stream_loss
from seqmodels.decoding import SamplingSettings, generate
from seqmodels.fastgen import FastCharLM
from seqmodels.tokenizers import CharTokenizer
from seqmodels.training import native_bf16
from train.common import add_loop_args, fail, parse_command_line, set_threads, train_and_card, train_config

MAX_SAMPLE_LENGTH = 100_000  # the CLI cap on generated characters; the app's is lower



# --------------------------------------------------------------------------- train

def resolved_dtype(dtype: str) -> str:
    if dtype != "auto":
        return dtype
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return "auto (bf16 here)" if native_bf16(device) else "auto (fp32 here)"


def model_card(args, data_desc: str, config: CharLMConfig, n_params: int, metrics: dict, summary: dict | None) -> str:
    command = "python -m train.charlm " + shlex.join(sys.argv[1:])
    lines = [
        "---", "library_name: pytorch", "tags: [rnn-playground, char-lm, " + config.cell + "]", "---", "",
        f"# Character-level {config.cell.upper()} language model", "",
        f"A {config.num_layers}-layer {config.cell.upper()} with {config.hidden_size} hidden units "
        f"({n_params:,} parameters), trained by RNN Playground's `train/charlm.py`.", "",
        "## Training", "",
        f"- Command: `{command}`",
        f"- Data: {data_desc}",
        f"- Hardware: {hardware_summary()}",
        f"- Config: `{json.dumps(config.__dict__)}`" + ("; weights stored in fp16" if args.half else ""),
        f"- Batch {args.batch_size} x {args.seq_len} characters, {args.steps} steps, AdamW lr {args.lr} "
        f"warm-up {args.warmup} then cosine to {args.min_lr}, clip {args.grad_clip}, dtype {resolved_dtype(args.dtype)}, seed {args.seed}",
        "", "## Metrics (validation split: the last 10% of the text)", "",
        f"- Best validation loss: {metrics['val_loss']:.4f} nats/char ({metrics['val_bpc']:.4f} bits/char) "
        f"at step {metrics['step']} ({metrics['elapsed_s'] / 60:.1f} min into training)",
    ]
    if summary:
        lines += [
            f"- Training wall time: {summary['elapsed_s'] / 60:.1f} min for {summary['steps']} steps; "
            f"throughput {summary['tokens_per_s']:,} characters/s",
        ]
    lines += ["", "Evaluate: `python -m train.charlm evaluate --checkpoint THIS_FOLDER --text FILE`", ""]
    return "\n".join(lines)


def cmd_train(args) -> None:
    set_threads(args)
    try:
        if args.text:
            text = read_text(args.text)
            digest = hashlib.sha256(Path(args.text).read_bytes()).hexdigest()[:16]
            data_desc = f"`{Path(args.text).name}` ({len(text):,} characters, sha256 {digest}…)"
        else:
            text = load_hf_text(args.hf_dataset, args.text_column, args.hf_split, args.hf_config)
            data_desc = f"Hugging Face dataset `{args.hf_dataset}`, column `{args.text_column}` ({len(text):,} characters)"
    except DataError as e:
        fail(str(e))
    out = Path(args.out)
    if args.resume:
        try:  # the run's own tokenizer and model shape, not ones rebuilt from flags
            saved = read_config(out)
            tokenizer = load_tokenizer(out)
            config = CharLMConfig(**saved["config"])
        except (CheckpointError, OSError, ValueError, TypeError) as e:
            fail(f"cannot resume: {e}")
    else:
        if (out / "resume.pt").exists() and not args.overwrite:
            fail(f"{out} already holds a training run; pass --resume to continue it or --overwrite to start again")
        tokenizer = CharTokenizer.from_text(text)
        try:
            config = CharLMConfig(vocab_size=tokenizer.vocab_size, cell=args.cell, embedding_dim=args.embedding_dim,
                                  hidden_size=args.hidden_size, num_layers=args.layers, dropout=args.dropout)
        except ValueError as e:
            fail(str(e))
    enc = tokenizer.encode(text)
    if enc.unknown:
        logging.warning("dropped %d character kind(s) not in the resumed run's vocabulary", len(enc.unknown))
    ids = torch.tensor(enc.ids, dtype=torch.long)
    train_ids, val_ids = split_ids(ids, 0.9)
    model = CharLM(config)
    n_params = model.num_parameters()

    def save(m, folder, metrics):
        save_model(folder, m, tokenizer, metrics, half=args.half)
        atomic_write_text(Path(folder) / "README.md", model_card(args, data_desc, config, n_params, metrics, None))

    try:
        task = CharLMTask(train_ids, val_ids, args.batch_size, args.seq_len, save=save)
    except DataError as e:
        fail(str(e))
    cfg = train_config(args, out)
    logging.info("%s: %s parameters; %d train / %d validation characters; vocabulary %d",
                 config.cell, f"{n_params:,}", len(train_ids), len(val_ids), tokenizer.vocab_size)
    summary = train_and_card(model, task, cfg,
                             lambda best, run: model_card(args, data_desc, config, n_params, best, run))
    if summary is not None:
        print(json.dumps(summary))


# --------------------------------------------------------------------------- evaluate

def load_or_fail(folder: str):
    try:
        model, tokenizer, config = load_model(folder)
    except CheckpointError as e:
        fail(str(e))
    if config["model_type"] != "charlm":
        fail(f"{folder} holds a {config['model_type']} model, not a character language model")
    return model, tokenizer


def cmd_evaluate(args) -> None:
    set_threads(args)
    model, tokenizer = load_or_fail(args.checkpoint)
    try:
        text = read_text(args.text)
    except DataError as e:
        fail(str(e))
    enc = tokenizer.encode(text)
    if len(enc.ids) < 2:
        fail(f"{args.text} has fewer than two characters the model knows")
    ids = torch.tensor(enc.ids, dtype=torch.long)
    if args.split == "val":
        ids = split_ids(ids, 0.9)[1]
    t0 = time.time()
    loss = stream_loss(model, ids, streams=args.streams, chunk=256)
    result = {
        "loss": round(loss, 4), "bpc": round(loss / math.log(2), 4), "chars": len(ids) - 1,
        "unknown_chars": sum(1 for ch in text if ch not in tokenizer), "split": args.split,
        "checkpoint": args.checkpoint, "text": args.text, "seconds": round(time.time() - t0, 2),
    }
    print(json.dumps(result))


# --------------------------------------------------------------------------- sample

def cmd_sample(args) -> None:
    if args.length > MAX_SAMPLE_LENGTH:
        fail(f"--length {args.length:,} is over the cap of {MAX_SAMPLE_LENGTH:,} characters")
    try:
        settings = SamplingSettings(max_new_tokens=args.length, temperature=0.0 if args.greedy else args.temperature,
                                    top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    except ValueError as e:
        fail(str(e))
    model, tokenizer = load_or_fail(args.checkpoint)
    try:
        ids, notes = encode_prompt(tokenizer, args.prime)
    except PromptError as e:
        fail(str(e))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    stepper = FastCharLM(model, quantize=not args.no_quantize)
    sys.stdout.write(tokenizer.decode(ids))
    for token in generate(stepper, ids, settings):
        sys.stdout.write(tokenizer.chars[token.id])
        sys.stdout.flush()
    sys.stdout.write("\n")


# --------------------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train.charlm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command")

    t = sub.add_parser("train", help="train a model (the default command)")
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="a UTF-8 text file")
    src.add_argument("--hf-dataset", help="a Hugging Face dataset name, or a local dataset folder or file")
    t.add_argument("--text-column", default="text", help="the dataset column holding the text")
    t.add_argument("--hf-split", default="train")
    t.add_argument("--hf-config", default=None, help="the dataset configuration name, if it has several")
    t.add_argument("--out", default=None, help="run folder; the best checkpoint is written here (default runs/charlm-CELL)")
    t.add_argument("--cell", default="lstm", choices=sorted(CELLS))
    t.add_argument("--layers", type=int, default=2)
    t.add_argument("--hidden-size", type=int, default=512)
    t.add_argument("--embedding-dim", type=int, default=64)
    t.add_argument("--dropout", type=float, default=0.2)
    t.add_argument("--batch-size", type=int, default=64, help="sequences per step, per process")
    t.add_argument("--seq-len", type=int, default=128, help="characters per sequence (backpropagation through time)")
    add_loop_args(t, steps=3000, lr=2e-3, warmup=100, eval_interval=250)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="loss and bits per character of a checkpoint on a text file")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--text", required=True)
    e.add_argument("--split", default="all", choices=["all", "val"], help="all: the whole file; val: its last 10%%")
    e.add_argument("--streams", type=int, default=1,
                   help="read the file as this many contiguous pieces in parallel (1: one pass, full context)")
    e.add_argument("--threads", type=int, default=0)
    e.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("sample", help="generate text from a checkpoint")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--prime", default="", help="text to continue (empty: start from a newline)")
    s.add_argument("--length", type=int, default=500, help="characters to generate")
    s.add_argument("--temperature", type=float, default=0.8, help="0 is greedy")
    s.add_argument("--top-k", type=int, default=0, help="0: off")
    s.add_argument("--top-p", type=float, default=1.0, help="1: off")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--greedy", action="store_true", help="always take the most likely character")
    s.add_argument("--no-quantize", action="store_true", help="fp32 weights instead of int8 (slower)")
    s.set_defaults(func=cmd_sample)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parse_command_line(build_parser(), argv)
    if args.command == "train" and args.out is None:
        args.out = f"runs/charlm-{args.cell}"
    args.func(args)


if __name__ == "__main__":
    main()
