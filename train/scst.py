"""Stage 2 of captioning: self-critical sequence training of a trained captioner's decoder (seqmodels/scst.py).

    python -m train.scst --init runs/caption --flickr8k ../shared/data/flickr8k --cache-dir runs/cache --out runs/scst

The encoder is frozen and its grids cached (``--fine-tune-blocks N``: all but its last N blocks, which train with
the decoder, and the output of those below is cached instead); the decoder samples captions and is rewarded by
CIDEr-D (the default), sentence BLEU-4, or both, against each image's training captions. The best step is chosen by
greedy validation CIDEr among the steps whose captions stay varied (``--min-distinct``): a BLEU reward
alone once taught a model to say "a brown dog is running in the grass" for 45 of 1,000 photos.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from seqmodels.cards import hardware_summary
from seqmodels.checkpoint import CheckpointSpec
from seqmodels.data import DataError
from seqmodels.data.captions import caption_ids, decode_images, encode_grids, training_splits
from seqmodels.encoders import top_blocks_text
from seqmodels.scst import REWARDS, SelfCritical, SelfCriticalTask, make_reward, with_end
from seqmodels.training import TrainConfig
from train.caption import add_data_args
from train.common import (COUNT, HelpFormatter, add_loop_args, add_out_arg, command_line, fail, load_or_fail, number,
                          prepare_out, schedule_text, set_threads, train_and_card, train_config)

# the shipped stage 2's rates: small steps, since the reward moves the model quickly and twice this made a
# BLEU reward game the metric (README)
LOOP = TrainConfig(max_steps=100_000, learning_rate=4e-5, min_lr=1e-5, warmup_steps=20, eval_interval=100)


def encoder_text(args) -> str:
    blocks = args.fine_tune_blocks
    return f"the encoder's {top_blocks_text(blocks)} and head fine-tuned, the rest frozen" if blocks else "encoder frozen"


def scst_card(args, desc: str, n_train: int, init_card: str, metrics: dict, wall_s: float,
              summary: dict | None = None) -> str:
    """The fine-tuned model's card: the starting model's training section, then this stage's."""
    head, _, rest = init_card.partition("## Training")
    first_stage = rest.partition("## Metrics")[0].strip() if rest else f"(from `{args.init}`)"
    lines = [head.rstrip() if head.strip() else "# Image captioning: CNN encoder, LSTM decoder with soft attention",
             "", "## Training", "", "### Stage 1: cross-entropy", "", first_stage, "",
             f"### Stage 2: self-critical sequence training ({args.reward} reward), {encoder_text(args)}", "",
             f"- Command: `{command_line('train.scst')}`",
             f"- Data: {desc}; {n_train:,} training images",
             f"- Hardware: {hardware_summary()}",
             f"- {args.samples} sampled captions per image (dropout {'on' if args.dropout else 'off'}), "
             f"{args.batch_size} images per step, baseline: the mean reward of the image's other samples; "
             + (f"plus {args.xe_weight:g} x the cross-entropy of one reference caption per image; " if args.xe_weight else "") +
             f"{schedule_text(train_config(args, args.out))}, "
             f"time budget {args.time_budget:g} min (feature caching included), seed {args.seed}"]
    if summary:
        lines.append(f"- Wall time: {wall_s / 60:.1f} min for {summary['steps']} steps")
    lines += ["", "## Metrics", "",
              f"- Chosen by greedy CIDEr on {metrics.get('val_bleu_n', 0):,} validation images among steps whose "
              f"captions are at least {args.min_distinct:.0%} distinct: CIDEr {metrics.get('val_cider', float('nan')):.2f}, "
              f"BLEU-4 {metrics.get('val_bleu4', float('nan')):.2f}, {metrics.get('val_distinct', float('nan')):.0%} "
              f"distinct, at step {metrics['step']}",
              "", "Evaluate: `python -m train.caption evaluate --checkpoint THIS_FOLDER --flickr8k DIR --split test`",
              "", "## Evaluation", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m train.scst", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--init", required=True, help="the model to start from (a train.caption run's output folder, or a "
                   "Hugging Face Hub model repo OWNER/NAME[@REVISION])")
    add_data_args(p, p.add_mutually_exclusive_group(required=True))
    add_out_arg(p, "runs/caption-scst")
    p.add_argument("--reward", default="cider", choices=REWARDS,
                   help="what a sampled caption is scored by against its image's training captions")
    p.add_argument("--samples", type=number(int, 2), default=5,
                   help="captions sampled per image; each is judged against the others")
    p.add_argument("--batch-size", type=COUNT, default=16, help="images per step")
    p.add_argument("--max-len", type=COUNT, default=25, help="the longest sampled caption, in words")
    p.add_argument("--dropout", action="store_true",
                   help="sample with the decoder's dropout on (off by default: the samples come from the decoder the app runs)")
    p.add_argument("--xe-weight", type=number(float, 0), default=0.0,
                   help="add this weight times the cross-entropy of one reference caption per image: keeps the "
                   "references' grammar, which an n-gram reward cannot see (\"in the beach\")")
    p.add_argument("--fine-tune-blocks", type=number(int, 0), default=None, metavar="N",
                   help="train the last N blocks of an efficientnet-lite0 encoder too (default: as --init was trained, "
                   "frozen for a model trained with a frozen encoder)")
    p.add_argument("--min-distinct", type=number(float, 0, 1, below=False), default=0.45,
                   help="a step counts as best only when this fraction of its validation captions are distinct")
    add_loop_args(p, LOOP, steps_help="a step cap; --time-budget usually ends training first")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args = p.parse_args(argv)

    t_start = time.time()
    set_threads(args)
    model, tokenizer, _ = load_or_fail(args.init, "captioner")
    if Path(args.out).resolve() == Path(args.init).resolve():
        fail("--out must differ from --init (the starting model would be overwritten)")
    prepare_out(args, type(model.config))
    try:
        train_set, val_set, desc = training_splits(args.flickr8k, args.images, args.captions, args.train_list,
                                                   args.val_list, args.hf_dataset, args.hf_split, args.hf_val_split,
                                                   args.hf_config)
        config = model.config
        if args.fine_tune_blocks is None:
            args.fine_tune_blocks = model.config.fine_tune_blocks
        if args.fine_tune_blocks or model.config.fine_tune_blocks:  # the frozen rest's output is cached below
            model.unfreeze_top_blocks(args.fine_tune_blocks)
        else:
            model.encoder.requires_grad_(False)  # its grids are computed once, below
        # the evaluation view (the whole image at the model's size, as `evaluate` and the app see it)
        train_images, train_names, _ = decode_images(train_set, sorted(train_set.captions), config.image_size,
                                                     config.fit, args.cache_dir)
        val_images, val_names, _ = decode_images(val_set, sorted(val_set.captions), config.image_size, config.fit,
                                                 args.cache_dir)
    except (DataError, ValueError) as e:
        fail(str(e))
    grids = [encode_grids(model, x, args.cache_dir) for x in (train_images, val_images)]
    del train_images, val_images
    logging.info("the grids of %d train / %d validation images ready in %.1f s", len(train_names), len(val_names),
                 time.time() - t_start)
    train_caps = [caption_ids(tokenizer, train_set.captions[n]) for n in train_names]  # the reward's, the anchor's
    try:
        reward = make_reward(args.reward, [[with_end(c) for c in own] for own in train_caps])
        wrapped = SelfCritical(model, reward, samples=args.samples, max_len=args.max_len, dropout=args.dropout,
                               xe_weight=args.xe_weight)
    except ValueError as e:
        fail(str(e))
    sizes = {"train": len(train_names), "val": len(val_names)}
    init_card_path = Path(args.init) / "README.md"
    init_card = init_card_path.read_text(encoding="utf-8") if init_card_path.is_file() else ""

    task = SelfCriticalTask(grids[0], grids[1], [val_set.captions[n] for n in val_names],
                            CheckpointSpec(tokenizer, args.half, {"data": sizes}),
                            batch_size=args.batch_size, min_distinct=args.min_distinct,
                            train_caps=train_caps if args.xe_weight else None)
    cfg = train_config(args, args.out)
    # the budget covers the whole fine-tuning: what the feature caching took comes off the loop's share
    cfg.time_budget_s = max(1.0, cfg.time_budget_s - (time.time() - t_start)) if args.time_budget else 0.0
    wrapped.train()
    summary = train_and_card(wrapped, task, cfg, lambda best, run: scst_card(
        args, desc, sizes["train"], init_card, best, time.time() - t_start, run))
    if summary is not None:
        print(json.dumps({**summary, "wall_s": round(time.time() - t_start, 1)}))


if __name__ == "__main__":
    main()
