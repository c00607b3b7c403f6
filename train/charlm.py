"""Train, evaluate and sample character-level language models: vanilla RNN, LSTM, GRU, the linear
recurrences minGRU, minLSTM and RG-LRU, and a Transformer for reference (``--cell``).

    python -m train.charlm --text input.txt --cell lstm --out runs/my-lstm        # train
    python -m train.charlm --text input.txt --cell mingru --time-budget 26         # a modern RNN, 26 minutes
    python -m train.charlm --hf-dataset NAME --text-column text --out runs/hf-lstm  # train on a HF dataset
    python -m train.charlm evaluate --checkpoint checkpoints/charlm-lstm --text other.txt
    python -m train.charlm sample --checkpoint checkpoints/charlm-lstm --prompt "ROMEO:" --max-new-tokens 300
    python -m train.charlm sample --checkpoint USER/NAME@REVISION --prompt "ROMEO:"  # a Hub model repo (train.hub push)

Training splits the text like nanoGPT: the first 90% trains, the last 10% validates. Several GPUs or
machines: `torchrun --nproc_per_node 4 -m train.charlm --text input.txt ...` (each process reads its own
random batches; the effective batch is batch-size x processes).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import torch

from seqmodels.cards import build_card, file_digest, record_evaluation
from seqmodels.charlm import CharLMConfig, PromptError, encode_prompt
from seqmodels.charmodels import CHAR_CELLS, CHAR_MODEL_TYPES, build_char_model, cell_of, default_batch
from seqmodels.linear_rnn import LinearRNNConfig
from seqmodels.transformer import TransformerConfig
from seqmodels.checkpoint import CheckpointSpec
from seqmodels.data import DataError, read_text
from seqmodels.data.text import CharLMTask, load_hf_text, split_ids, stream_loss
from seqmodels.decoding import SamplingSettings, generate
from seqmodels.devices import prefers_bf16
from seqmodels.fastgen import fast_stepper
from seqmodels.tokenizers import CharTokenizer
from seqmodels.training import TrainConfig
from train.common import (COUNT, FRACTION, add_checkpoint_arg, add_command, add_hf_args, add_int8_arg, add_loop_args,
                          add_out_arg, add_record_arg, add_split_arg, add_threads_arg, command_line, deprecated_alias,
                          dispatch, fail, load_or_fail, parse_command_line, prepare_out, provenance,
                          refuse_new_model_options, schedule_text, script_parser, set_threads, train_and_card,
                          train_config)

MAX_SAMPLE_LENGTH = 100_000  # the CLI cap on generated characters; the app's is lower
SAMPLE_TEMPERATURE = 0.8  # sample's default; SamplingSettings' 1.0 is the model's own distribution
DEFAULT_OUT = "runs/charlm-CELL"  # CELL becomes the --cell


# --------------------------------------------------------------------------- train

def resolved_dtype(dtype: str) -> str:
    if dtype != "auto":
        return dtype
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return "auto (bf16 here)" if prefers_bf16(device) else "auto (fp32 here)"


def short_name(cell: str) -> str:
    """"LSTM", "minGRU", "causal Transformer": the cell's description up to its reference."""
    return CHAR_CELLS[cell][1].split(" (")[0].split(":")[0]


def describe(config) -> str:
    """"A 2-layer LSTM with 512 hidden units", for the card."""
    cell = getattr(config, "cell", "transformer")
    name = short_name(cell)
    extra = f", {config.num_heads} heads and a {config.context}-character window" if cell == "transformer" else ""
    n = config.num_layers
    article = "An" if str(n).startswith("8") or n in (11, 18) else "A"  # "an eight", "an eleven"
    return f"{article} {n}-layer {name} with {config.hidden_size} hidden units{extra}"


def model_card(args, cfg: TrainConfig, data_desc: str, config, n_params: int, metrics: dict,
               summary: dict | None) -> str:
    steps = f"{cfg.max_steps} steps"
    if cfg.time_budget_s > 0:  # the cosine follows the steps or the clock, whichever is further along
        steps = f"at most {steps} in {cfg.time_budget_s / 60:g} minutes"
    training = [
        *provenance("train.charlm", data_desc, config, args.half),
        f"- Batch {args.batch_size} x {args.seq_len} characters, {steps}, {schedule_text(cfg)}, "
        f"dtype {resolved_dtype(cfg.dtype)}, seed {cfg.seed}",
    ]
    results = [
        f"- Best validation loss: {metrics['val_loss']:.4f} nats/char ({metrics['val_bpc']:.4f} bits/char) "
        f"at step {metrics['step']} ({metrics['elapsed_s'] / 60:.1f} min into training)",
    ]
    if summary:
        results.append(f"- Training wall time: {summary['elapsed_s'] / 60:.1f} min for {summary['steps']} steps; "
                       f"throughput {summary['tokens_per_s']:,} characters/s")
    results += ["", "Evaluate: `python -m train.charlm evaluate --checkpoint THIS_FOLDER --text FILE`"]
    return build_card(
        ["rnn-playground", "char-lm", getattr(config, "cell", "transformer")],
        f"Character-level {short_name(getattr(config, 'cell', 'transformer'))} language model",
        f"{describe(config)} ({n_params:,} parameters), trained by RNN Playground's `train/charlm.py`.",
        [("Training", training), ("Metrics (validation split: the last 10% of the text)", results)])


# each model option's dest and the config field it sets
SHAPE_OPTIONS = {"cell": "cell", "layers": "num_layers", "hidden_size": "hidden_size", "embedding_dim": "embedding_dim",
                 "dropout": "dropout", "heads": "num_heads", "context": "context"}


def refuse_a_new_shape(args, config) -> None:
    """Exit if a model option given with --resume differs from the run's (its defaults depend on the cell, so
    they stay None here until the cell's config class fills them)."""
    saved = {**config.__dict__, "cell": getattr(config, "cell", "transformer")}
    refuse_new_model_options(args, {dest: saved[field] for dest, field in SHAPE_OPTIONS.items() if field in saved},
                             f"a {saved['cell']} run")


def cmd_train(args) -> None:
    set_threads(args)
    try:
        if args.text:
            text = read_text(args.text)
            data_desc = f"`{Path(args.text).name}` ({len(text):,} characters, sha256 {file_digest(args.text)}…)"
        else:
            text = load_hf_text(args.hf_dataset, args.text_column, args.hf_split, args.hf_config)
            data_desc = f"Hugging Face dataset `{args.hf_dataset}`, column `{args.text_column}` ({len(text):,} characters)"
    except DataError as e:
        fail(str(e))
    resumed = prepare_out(args)
    if resumed is not None:
        config, tokenizer = resumed
        refuse_a_new_shape(args, config)
        model = build_char_model(getattr(config, "cell", "transformer"), config.__dict__)
    else:
        tokenizer = CharTokenizer.from_text(text)
        try:  # options left unset (None) take the defaults of the cell's own config class
            model = build_char_model(args.cell or CharLMConfig.cell, dict(
                vocab_size=tokenizer.vocab_size, embedding_dim=args.embedding_dim, hidden_size=args.hidden_size,
                num_layers=args.layers, dropout=args.dropout, num_heads=args.heads, context=args.context))
        except ValueError as e:
            fail(str(e))
        config = model.config
    default_size, default_len = default_batch(cell_of(model))
    if args.batch_size is None:
        args.batch_size = default_size
    if args.seq_len is None:
        args.seq_len = getattr(config, "context", default_len)
    enc = tokenizer.encode(text)
    if enc.unknown:
        logging.warning("dropped %d character kind(s) not in the resumed run's vocabulary", len(enc.unknown))
    ids = torch.tensor(enc.ids, dtype=torch.long)
    train_ids, val_ids = split_ids(ids)
    n_params = model.num_parameters()
    cfg = train_config(args, args.out)

    try:
        task = CharLMTask(train_ids, val_ids, args.batch_size, args.seq_len, CheckpointSpec(tokenizer, half=args.half))
    except DataError as e:
        fail(str(e))
    logging.info("%s: %s parameters; %d train / %d validation characters; vocabulary %d",
                 cell_of(model), f"{n_params:,}", len(train_ids), len(val_ids), tokenizer.vocab_size)
    summary = train_and_card(model, task, cfg,
                             lambda best, run: model_card(args, cfg, data_desc, config, n_params, best, run))
    if summary is not None:
        print(json.dumps(summary))


# --------------------------------------------------------------------------- evaluate

def cmd_evaluate(args) -> None:
    set_threads(args)
    model, tokenizer, _ = load_or_fail(args.checkpoint, CHAR_MODEL_TYPES)
    try:
        text = read_text(args.text)
    except DataError as e:
        fail(str(e))
    ids = torch.tensor(tokenizer.encode(text).ids, dtype=torch.long)
    if args.split != "all":  # the split training made of this text
        ids = dict(zip(("train", "val"), split_ids(ids)))[args.split]
    if len(ids) < 2:
        fail(f"{'' if args.split == 'all' else f'the {args.split} split of '}{args.text} has fewer than two "
             "characters the model knows")
    t0 = time.time()
    loss = stream_loss(model, ids, streams=args.streams, chunk=256)
    result = {
        "loss": round(loss, 4), "bpc": round(loss / math.log(2), 4), "chars": len(ids) - 1,
        "unknown_chars": sum(1 for ch in text if ch not in tokenizer), "split": args.split,
        "checkpoint": args.checkpoint, "text": args.text, "seconds": round(time.time() - t0, 2),
    }
    if args.record:
        record_evaluation(args.checkpoint, f"- `{command_line('train.charlm', omit=('--record',))}`: "
                                           f"{result['loss']} nats/char ({result['bpc']} bits/char) on "
                                           f"{result['chars']:,} characters; {result['seconds']} s")
    print(json.dumps(result))


# --------------------------------------------------------------------------- sample

def cmd_sample(args) -> None:
    set_threads(args)
    if args.max_new_tokens > MAX_SAMPLE_LENGTH:
        fail(f"--max-new-tokens {args.max_new_tokens:,} is over the cap of {MAX_SAMPLE_LENGTH:,} characters")
    try:
        settings = SamplingSettings(max_new_tokens=args.max_new_tokens,
                                    temperature=0.0 if args.greedy else args.temperature,
                                    top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    except ValueError as e:
        fail(str(e))
    model, tokenizer, _ = load_or_fail(args.checkpoint, CHAR_MODEL_TYPES)
    try:
        ids, notes = encode_prompt(tokenizer, args.prompt)
    except PromptError as e:
        fail(str(e))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    stepper = fast_stepper(model, quantize=args.int8)
    sys.stdout.write(tokenizer.decode(ids))
    for token in generate(stepper, ids, settings):
        sys.stdout.write(tokenizer.chars[token.id])
        sys.stdout.flush()
    sys.stdout.write("\n")


# --------------------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    p, sub, t, src = script_parser("train.charlm", __doc__)
    src.add_argument("--text", help="a UTF-8 text file")
    add_hf_args(t, src, "a Hugging Face dataset")
    t.add_argument("--text-column", default="text", help="with --hf-dataset: the column holding the text")
    add_out_arg(t, DEFAULT_OUT)
    t.add_argument("--cell", choices=list(CHAR_CELLS),  # None: lstm, or with --resume the run's own
                   help=f"the model (default: {CharLMConfig.cell}): "
                        + "; ".join(f"{k}: {v[1]}" for k, v in CHAR_CELLS.items()))
    # unset size options take the defaults of the cell's config class (seqmodels/charlm.py, linear_rnn.py, transformer.py)
    def each(field: str) -> str:
        return (f"(default: {getattr(CharLMConfig, field)} for rnn/lstm/gru, {getattr(LinearRNNConfig, field)} for "
                f"mingru/minlstm/rglru, {getattr(TransformerConfig, field)} for the transformer)")

    t.add_argument("--layers", type=COUNT, help="stacked layers " + each("num_layers"))
    t.add_argument("--hidden-size", type=COUNT, help="units per layer " + each("hidden_size"))
    t.add_argument("--embedding-dim", type=COUNT,
                   help=f"size of a character's vector, rnn/lstm/gru (default: {CharLMConfig.embedding_dim})")
    t.add_argument("--dropout", type=FRACTION, help="dropout rate " + each("dropout"))
    t.add_argument("--heads", type=COUNT, help=f"transformer: attention heads (default: {TransformerConfig.num_heads})")
    t.add_argument("--context", type=COUNT,
                   help=f"transformer: attention window in characters (default: {TransformerConfig.context})")
    t.add_argument("--batch-size", type=COUNT, help="sequences per step, per process (default 64; transformer 32)")
    t.add_argument("--seq-len", type=COUNT,
                   help="characters per sequence (backpropagation through time; default 128, transformer: its --context)")
    add_loop_args(t)  # TrainConfig's defaults are this script's
    t.set_defaults(func=cmd_train)

    e = add_command(sub, "evaluate", "loss and bits per character of a checkpoint on a text file")
    add_checkpoint_arg(e, "a character model")
    e.add_argument("--text", required=True, help="a UTF-8 text file")
    add_split_arg(e, ["all", "train", "val"])
    e.add_argument("--streams", type=COUNT, default=1,
                   help="read the text as this many contiguous pieces in parallel (1: one pass, full context)")
    add_record_arg(e)
    add_threads_arg(e)
    e.set_defaults(func=cmd_evaluate)

    s = add_command(sub, "sample", "generate text from a checkpoint")
    add_checkpoint_arg(s, "a character model")
    s.add_argument("--prompt", default="", help="text to continue (empty: start from a newline)")
    deprecated_alias(s, "--prime", "--prompt", dest="prompt")
    s.add_argument("--max-new-tokens", type=int, default=SamplingSettings.max_new_tokens,
                   help=f"characters to generate (at most {MAX_SAMPLE_LENGTH:,})")
    deprecated_alias(s, "--length", "--max-new-tokens", dest="max_new_tokens", type=int)
    s.add_argument("--temperature", type=float, default=SAMPLE_TEMPERATURE, help="0 is greedy")
    s.add_argument("--top-k", type=int, default=SamplingSettings.top_k, help="0: off")
    s.add_argument("--top-p", type=float, default=SamplingSettings.top_p, help="1: off")
    s.add_argument("--seed", type=int, default=SamplingSettings.seed, help="the same seed gives the same text")
    s.add_argument("--greedy", action="store_true", help="always take the most likely character")
    add_int8_arg(s, default=True, old="--no-quantize")
    add_threads_arg(s)
    s.set_defaults(func=cmd_sample)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parse_command_line(build_parser(), argv)
    if args.command == "train" and args.out == DEFAULT_OUT:
        args.out = f"runs/charlm-{args.cell or CharLMConfig.cell}"
    dispatch(args)


if __name__ == "__main__":
    main()
