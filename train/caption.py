"""Train, evaluate and use image captioning models with soft attention (Show, Attend and Tell).

    python -m train.caption --flickr8k ../shared/data/flickr8k --out runs/caption          # train on the official split
    python -m train.caption --images DIR --captions captions.json --out runs/mine          # your own images
    python -m train.caption --hf-dataset NAME_OR_IMAGEFOLDER --out runs/hf                 # a Hugging Face dataset
    python -m train.caption scst --init runs/caption --flickr8k ../shared/data/flickr8k --out runs/scst --reward bleu
    python -m train.caption evaluate --checkpoint checkpoints/caption-flickr8k --images DIR --captions FILE --split FILE --beam 3
    python -m train.caption caption --checkpoint checkpoints/caption-flickr8k photo1.jpg photo2.png

Captions files: the Flickr8k token format (``name.jpg#0<TAB>caption``), JSON ``{"name.jpg": ["caption", ...]}``,
or JSONL/CSV rows with ``image`` and ``caption``. Images named in a captions file but absent from the folder
are skipped and counted. Encoders: ``--encoder cnn`` (from scratch, the default), or ``resnet18`` /
``resnet50`` with ``--pretrained`` (torchvision's ImageNet weights, downloaded) or ``--encoder-weights FILE``,
frozen with ``--freeze-encoder`` (its features are then computed once and cached). ``scst`` fine-tunes a trained
model's decoder by self-critical sequence training on a CIDEr-D or BLEU-4 reward (``seqmodels/scst.py``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import shlex
import sys
import time
from pathlib import Path

import torch

from seqmodels.caption import ENCODERS, CaptionConfig, Captioner
from seqmodels.checkpoint import (CheckpointError, atomic_save_tensors, atomic_write_text, hardware_summary, load_model,
                                  load_tokenizer, read_config, save_model)
from seqmodels.data import CaptionSet, CaptionTask, DataError, caption_set, caption_words, center_resize, load_hf_captions
from seqmodels.decoding import beam_search, greedy_search
from seqmodels.images import ImageError, load_for_model
from seqmodels.metrics import caption_scores
from seqmodels.scst import REWARDS, SelfCritical, SelfCriticalTask, make_reward, with_end
from seqmodels.tokenizers import WordTokenizer
from train.common import add_loop_args, fail, parse_command_line, set_threads, train_and_card, train_config

MAX_BEAM = 10


# --------------------------------------------------------------------------- data

def decode_images(data: CaptionSet, names: list[str], size: int, cache_dir: str | None) -> tuple[torch.Tensor, list[str], int]:
    """Decode every image once into uint8 (N, 3, size, size); returns (images, names kept, unreadable count).

    With ``cache_dir`` the tensor is stored there, keyed by the folder, the names and the size, so the next
    run skips the decoding (about a minute for Flickr8k here).
    """
    key = hashlib.sha256(f"{data.folder}|{size}|{'|'.join(names)}".encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"images-{size}-{key}.safetensors" if cache_dir and data.folder else None
    if cache is not None and cache.is_file():
        from safetensors.torch import load_file
        stored = load_file(str(cache))
        kept = json.loads((cache.with_suffix(".json")).read_text())
        return stored["images"], kept, len(names) - len(kept)
    tensors, kept, bad = [], [], 0
    for name in names:
        source = data.images[name] if data.images is not None else data.folder / name
        try:
            tensor, _, _ = load_for_model(source, size)
        except ImageError as e:
            logging.warning("skipped %s: %s", name, e)
            bad += 1
            continue
        tensors.append(tensor)
        kept.append(name)
    if not tensors:
        fail("none of the images could be read")
    images = torch.stack(tensors)
    if cache is not None:
        atomic_save_tensors(cache, {"images": images})
        atomic_write_text(cache.with_suffix(".json"), json.dumps(kept))
    return images, kept, bad


def load_splits(args) -> tuple[CaptionSet, CaptionSet, str]:
    """(train set, validation set, description) from --flickr8k, --images/--captions or --hf-dataset."""
    try:
        if args.hf_dataset:
            train_set = load_hf_captions(args.hf_dataset, args.hf_split)
            if args.hf_val_split:
                val_set = load_hf_captions(args.hf_dataset, args.hf_val_split)
            else:  # hold out 10% of the images, chosen by a fixed seed
                keys = sorted(train_set.captions)
                random.Random(0).shuffle(keys)
                cut = max(1, len(keys) // 10)
                val_set = CaptionSet({k: train_set.captions[k] for k in keys[:cut]}, None, images=train_set.images)
                train_set = CaptionSet({k: train_set.captions[k] for k in keys[cut:]}, None, images=train_set.images)
            desc = f"Hugging Face dataset `{args.hf_dataset}`"
        else:
            if args.flickr8k:
                root = Path(args.flickr8k)
                images, captions = root / "images", root / "Flickr8k.token.txt"
                train_split, val_split = root / "Flickr_8k.trainImages.txt", root / "Flickr_8k.devImages.txt"
            else:
                images, captions, train_split, val_split = args.images, args.captions, args.train_split, args.val_split
            if (train_split is None) != (val_split is None):
                fail("give both --train-split and --val-split, or neither (then 10% of the images validate)")
            if train_split is None:
                everything = caption_set(images, captions)
                keys = sorted(everything.captions)
                random.Random(0).shuffle(keys)
                cut = max(1, len(keys) // 10)
                val_set = CaptionSet({k: everything.captions[k] for k in keys[:cut]}, everything.folder)
                train_set = CaptionSet({k: everything.captions[k] for k in keys[cut:]}, everything.folder,
                                       missing=everything.missing, skipped_lines=everything.skipped_lines)
            else:
                train_set, val_set = caption_set(images, captions, train_split), caption_set(images, captions, val_split)
            desc = f"images in `{Path(images).name}/`, captions `{Path(captions).name}`"
    except DataError as e:
        fail(str(e))
    if train_set.missing or val_set.missing:
        logging.warning("skipped %d image(s) named in the captions but missing from the folder",
                        train_set.missing + val_set.missing)
    return train_set, val_set, desc


# --------------------------------------------------------------------------- train

def caption_ids(tokenizer, captions: list[str]) -> list[list[int]]:
    """Token ids of each caption, read as training and scoring read it (lower-cased words, no punctuation)."""
    return [tokenizer.encode(" ".join(caption_words(c))).ids for c in captions]


def model_card(args, desc: str, sizes: dict, config: CaptionConfig, tokenizer, n_params: int, metrics: dict,
               summary: dict | None) -> str:
    command = "python -m train.caption " + shlex.join(sys.argv[1:])
    enc = {"cnn": "a compact ResNet trained from scratch"}.get(config.encoder, f"torchvision {config.encoder}")
    if config.pretrained:
        enc += " from ImageNet weights"
    enc += "" if config.fine_tune_encoder else " (frozen)"
    lines = [
        "---", "library_name: pytorch", "tags: [rnn-playground, image-captioning, show-attend-tell]", "---", "",
        "# Image captioning: CNN encoder, LSTM decoder with soft attention", "",
        f"Encoder: {enc}; decoder: an LSTM of {config.hidden_size} with additive attention over the "
        f"{config.image_size}-pixel image's feature grid; {tokenizer.vocab_size:,} words; {n_params:,} parameters. "
        "Trained by RNN Playground's `train/caption.py`.", "",
        "## Training", "",
        f"- Command: `{command}`",
        f"- Data: {desc}; {sizes['train']:,} training images, {sizes['val']:,} validation images",
        f"- Hardware: {hardware_summary()}",
        f"- Config: `{json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in config.__dict__.items()})}`"
        + ("; weights stored in fp16" if args.half else ""),
        f"- Batch {args.batch_size} images x {args.captions_per_image} captions, AdamW lr {args.lr} warm-up {args.warmup} then cosine to {args.min_lr}, clip "
        f"{args.grad_clip}, time budget {args.time_budget:g} min, seed {args.seed}",
        "", "## Metrics", "",
        f"- Best validation loss: {metrics['val_loss']:.4f} nats/word; greedy BLEU-4 "
        f"{metrics.get('val_bleu4', float('nan')):.2f} on {metrics.get('val_bleu_n', 0)} validation images, at step "
        f"{metrics['step']} ({metrics['elapsed_s'] / 60:.1f} min into training)",
    ]
    if summary:
        lines.append(f"- Training wall time: {summary['elapsed_s'] / 60:.1f} min for {summary['steps']} steps")
    lines += ["", "Evaluate: `python -m train.caption evaluate --checkpoint THIS_FOLDER --images DIR --captions FILE "
              "--split FILE --beam 3`", "", "## Evaluation", ""]
    return "\n".join(lines)


def load_encoder_weights(model: Captioner, args) -> None:
    """ImageNet weights for a torchvision encoder: downloaded (--pretrained) or from a file (--encoder-weights)."""
    import torchvision

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
        weights = {"resnet18": torchvision.models.ResNet18_Weights, "resnet50": torchvision.models.ResNet50_Weights}
        try:
            state = weights[args.encoder].IMAGENET1K_V1.get_state_dict(progress=True)
        except Exception as e:
            fail(f"cannot download the {args.encoder} ImageNet weights ({type(e).__name__}: {e}); "
                 "download them elsewhere and pass --encoder-weights FILE")
    # the backbone is the ResNet minus avgpool and fc: children 0..7 are named 0..7 in the Sequential
    names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    mapped = {}
    for k, v in state.items():
        head = k.split(".")[0]
        if head in names:
            mapped[f"{names.index(head)}{k[len(head):]}"] = v
    try:
        model.encoder.load_state_dict(mapped)
    except RuntimeError as e:
        fail(f"the encoder weights do not fit {args.encoder}: {str(e).splitlines()[0]}")


def cmd_train(args) -> None:
    set_threads(args)
    if args.encoder == "cnn" and (args.pretrained or args.encoder_weights):
        fail("--pretrained and --encoder-weights need a torchvision encoder: --encoder resnet18 or resnet50")
    train_set, val_set, desc = load_splits(args)
    out = Path(args.out)
    if args.resume:
        try:
            saved = read_config(out)
            tokenizer = load_tokenizer(out)
            config = CaptionConfig(**saved["config"])
        except (CheckpointError, TypeError, ValueError) as e:
            fail(f"cannot resume: {e}")
    else:
        if (out / "resume.pt").exists() and not args.overwrite:
            fail(f"{out} already holds a training run; pass --resume to continue it or --overwrite to start again")
        texts = (" ".join(caption_words(c)) for caps in train_set.captions.values() for c in caps)
        tokenizer = WordTokenizer.train(texts, min_count=args.min_count)
        try:
            config = CaptionConfig(vocab_size=tokenizer.vocab_size, encoder=args.encoder, image_size=args.image_size,
                                   fine_tune_encoder=not args.freeze_encoder,
                                   pretrained=bool(args.pretrained or args.encoder_weights),
                                   embedding_dim=args.embedding_dim, hidden_size=args.hidden_size,
                                   attention_dim=args.attention_dim, dropout=args.dropout,
                                   attention_reg=args.attention_reg, word_loss=args.word_loss)
        except ValueError as e:
            fail(str(e))
    t0 = time.time()
    load_size = max(args.image_size, args.load_size or args.image_size)
    train_names, val_names = sorted(train_set.captions), sorted(val_set.captions)
    train_images, train_names, bad_t = decode_images(train_set, train_names, load_size, args.cache_dir)
    val_images, val_names, bad_v = decode_images(val_set, val_names, load_size, args.cache_dir)
    logging.info("decoded %d train / %d validation images in %.1f s (%d unreadable)", len(train_names),
                 len(val_names), time.time() - t0, bad_t + bad_v)

    train_caps = [caption_ids(tokenizer, train_set.captions[n]) for n in train_names]
    val_caps = [caption_ids(tokenizer, val_set.captions[n]) for n in val_names]
    model = Captioner(config)
    if not args.resume and (args.pretrained or args.encoder_weights):
        load_encoder_weights(model, args)
    n_params = model.num_parameters()
    sizes = {"train": len(train_names), "val": len(val_names)}
    bleu_images = val_images[:args.val_bleu_images]
    bleu_refs = {str(i): val_set.captions[n] for i, n in enumerate(val_names[:args.val_bleu_images])}

    def val_bleu(m) -> dict:
        if not len(bleu_images):
            return {}
        hyps = {}
        for i in range(0, len(bleu_images), 100):
            batch = center_resize(bleu_images[i:i + 100], config.image_size)
            for j, h in enumerate(greedy_search(m, batch, max_len=30)):
                hyps[str(i + j)] = tokenizer.decode(h.tokens)
        scores = caption_scores(hyps, bleu_refs)
        return {"val_bleu4": scores["bleu4"], "val_cider": scores["cider"], "val_bleu_n": len(hyps)}

    def save(m, folder, metrics):
        save_model(folder, m, tokenizer, {**metrics, "data": sizes}, half=args.half)
        atomic_write_text(Path(folder) / "README.md", model_card(args, desc, sizes, config, tokenizer, n_params, metrics, None))

    try:
        task = CaptionTask(train_images, train_caps, val_images, val_caps, save=save, batch_size=args.batch_size,
                           image_size=config.image_size, augment_images=not args.no_augment,
                           extra_eval=val_bleu if args.val_bleu_images else None,
                           captions_per_image=args.captions_per_image)
    except DataError as e:
        fail(str(e))
    if not config.fine_tune_encoder:
        t0 = time.time()
        task.cache_features(model)
        logging.info("cached the frozen encoder's features in %.1f s", time.time() - t0)
    logging.info("%s parameters; %d train / %d validation images; vocabulary %d words",
                 f"{n_params:,}", len(train_names), len(val_names), tokenizer.vocab_size)
    summary = train_and_card(model, task, train_config(args, out), lambda best, run: model_card(
        args, desc, sizes, config, tokenizer, n_params, best, run))
    if summary is not None:
        print(json.dumps(summary))


def cmd_scst(args) -> None:
    """Self-critical fine-tuning of a trained model: its encoder frozen, its decoder trained on ``--reward``."""
    t_start = time.time()
    set_threads(args)
    try:
        model, tokenizer, init_config = load_model(args.init)
    except CheckpointError as e:
        fail(str(e))
    if init_config["model_type"] != "captioner":
        fail(f"{args.init} holds a {init_config['model_type']} model, not a captioning model")
    out = Path(args.out)
    if out.resolve() == Path(args.init).resolve():
        fail("--out must differ from --init (the starting model would be overwritten)")
    if (out / "resume.pt").exists() and not (args.resume or args.overwrite):
        fail(f"{out} already holds a training run; pass --resume to continue it or --overwrite to start again")
    train_set, val_set, desc = load_splits(args)
    config = model.config
    model.encoder.requires_grad_(False)  # its grids are computed once, below
    train_names, val_names = sorted(train_set.captions), sorted(val_set.captions)
    # the evaluation view (the whole image at the model's size, as `evaluate` and the app see it)
    train_images, train_names, _ = decode_images(train_set, train_names, config.image_size, args.cache_dir)
    val_images, val_names, _ = decode_images(val_set, val_names, config.image_size, args.cache_dir)
    with torch.no_grad():
        feats = [torch.cat([model.features(x[i:i + 100]) for i in range(0, len(x), 100)])
                 for x in (train_images, val_images)]
    del train_images, val_images
    logging.info("cached the grids of %d train / %d validation images in %.1f s", len(train_names), len(val_names),
                 time.time() - t_start)

    try:
        reward = make_reward(args.reward, [[with_end(c) for c in caption_ids(tokenizer, train_set.captions[n])]
                                           for n in train_names])
        wrapped = SelfCritical(model, reward, samples=args.samples, max_len=args.max_len)
    except ValueError as e:
        fail(str(e))
    sizes = {"train": len(train_names), "val": len(val_names)}
    init_card = (Path(args.init) / "README.md").read_text(encoding="utf-8") if (Path(args.init) / "README.md").is_file() else ""

    def save(m, folder, metrics):
        save_model(folder, m, tokenizer, {**metrics, "data": sizes}, half=args.half)
        atomic_write_text(Path(folder) / "README.md",
                          scst_card(args, desc, sizes["train"], init_card, metrics, time.time() - t_start))

    task = SelfCriticalTask(feats[0], feats[1], [val_set.captions[n] for n in val_names], tokenizer.decode, save,
                            batch_size=args.batch_size)
    cfg = train_config(args, out)
    # the budget covers the whole fine-tuning: what the feature caching took comes off the loop's share
    cfg.time_budget_s = max(1.0, cfg.time_budget_s - (time.time() - t_start)) if args.time_budget else 0.0
    model.train()
    summary = train_and_card(wrapped, task, cfg, lambda best, run: scst_card(
        args, desc, sizes["train"], init_card, best, time.time() - t_start, run))
    if summary is not None:
        best_bleu4 = -summary.pop("best_val_loss")  # the loop's "lowest is best" figure is -BLEU-4 here
        print(json.dumps({"best_val_bleu4": best_bleu4, **summary, "wall_s": round(time.time() - t_start, 1)}))


def scst_card(args, desc: str, n_train: int, init_card: str, metrics: dict, wall_s: float,
              summary: dict | None = None) -> str:
    """The fine-tuned model's card: the starting model's training section, then this stage's."""
    head, _, rest = init_card.partition("## Training")
    first_stage = rest.partition("## Metrics")[0].strip() if rest else f"(from `{args.init}`)"
    command = "python -m train.caption " + shlex.join(sys.argv[1:])
    lines = [head.rstrip() if head.strip() else "# Image captioning: CNN encoder, LSTM decoder with soft attention",
             "", "## Training", "", "### Stage 1: cross-entropy", "", first_stage, "",
             f"### Stage 2: self-critical sequence training ({args.reward} reward), encoder frozen", "",
             f"- Command: `{command}`",
             f"- Data: {desc}; {n_train:,} training images",
             f"- Hardware: {hardware_summary()}",
             f"- {args.samples} sampled captions per image, {args.batch_size} images per step, baseline: the mean "
             f"reward of the image's other samples; AdamW lr {args.lr} then cosine to {args.min_lr}, clip {args.grad_clip}, "
             f"time budget {args.time_budget:g} min (feature caching included), seed {args.seed}"]
    if summary:
        lines.append(f"- Wall time: {wall_s / 60:.1f} min for {summary['steps']} steps")
    lines += ["", "## Metrics", "",
              f"- Chosen by greedy BLEU-4 on {metrics.get('val_bleu_n', 0):,} validation images: "
              f"{metrics.get('val_bleu4', float('nan')):.2f} (CIDEr {metrics.get('val_cider', float('nan')):.2f}), "
              f"at step {metrics['step']}",
              "", "Evaluate: `python -m train.caption evaluate --checkpoint THIS_FOLDER --images DIR --captions FILE "
              "--split FILE --beam 3`", "", "## Evaluation", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- evaluate and caption

def load_or_fail(folder: str, beam: int):
    if not 1 <= beam <= MAX_BEAM:
        fail(f"--beam must be between 1 and {MAX_BEAM}")
    try:
        model, tokenizer, config = load_model(folder)
    except CheckpointError as e:
        fail(str(e))
    if config["model_type"] != "captioner":
        fail(f"{folder} holds a {config['model_type']} model, not a captioning model")
    return model, tokenizer


def caption_batch(model, tokenizer, images: torch.Tensor, beam: int, alpha: float = 1.0, max_len: int = 30):
    """Best captions (text, hypothesis) for a batch of uint8 images (B, 3, S, S)."""
    if beam == 1:
        hyps = [[h] for h in greedy_search(model, images, max_len=max_len)]
    else:
        hyps = beam_search(model, images, beam_size=beam, max_len=max_len, alpha=alpha)
    return [(tokenizer.decode(h[0].tokens), h) for h in hyps]


def cmd_evaluate(args) -> None:
    set_threads(args)
    model, tokenizer = load_or_fail(args.checkpoint, args.beam)
    try:
        data = caption_set(args.images, args.captions, args.split)
    except DataError as e:
        fail(str(e))
    names = sorted(data.captions)[:args.limit or None]
    size = model.config.image_size
    t0 = time.time()
    images, names, bad = decode_images(data, names, size, None)
    hyps = {}
    with torch.no_grad():
        for i in range(0, len(names), args.batch_size):
            for name, (text, _) in zip(names[i:i + args.batch_size],
                                       caption_batch(model, tokenizer, images[i:i + args.batch_size], args.beam, args.alpha)):
                hyps[name] = text
    result = caption_scores(hyps, {n: data.captions[n] for n in names})
    result.update({"missing_images": data.missing, "unreadable_images": bad, "skipped_lines": data.skipped_lines,
                   "beam": args.beam, "checkpoint": args.checkpoint, "seconds": round(time.time() - t0, 1)})
    if args.show:
        for name in names[:args.show]:
            print(f"{name}: {hyps[name]}\n  ref: {data.captions[name][0]}", file=sys.stderr)
    if args.record:
        card = Path(args.checkpoint) / "README.md"
        command = "python -m train.caption " + shlex.join(a for a in sys.argv[1:] if a != "--record")
        line = (f"- `{command}`: BLEU-1 {result['bleu1']}, BLEU-4 {result['bleu4']}, CIDEr {result['cider']} "
                f"on {result['n']:,} images; {result['seconds']} s")
        atomic_write_text(card, card.read_text(encoding="utf-8").rstrip("\n") + "\n" + line + "\n")
    print(json.dumps(result))


def cmd_caption(args) -> None:
    set_threads(args)
    model, tokenizer = load_or_fail(args.checkpoint, args.beam)
    status = 0
    for path in args.images:
        try:
            tensor, _, notes = load_for_model(path, model.config.image_size)
        except ImageError as e:
            print(f"error: {path}: {e}", file=sys.stderr)
            status = 1
            continue
        for note in notes:
            print(f"note: {path}: {note}", file=sys.stderr)
        with torch.no_grad():
            text, _ = caption_batch(model, tokenizer, tensor[None], args.beam, args.alpha)[0]
        print(f"{path}\t{text}")
    raise SystemExit(status)


# --------------------------------------------------------------------------- CLI

def add_data_args(t: argparse.ArgumentParser) -> None:
    """Where the training and validation images and captions come from (train and scst), and the output."""
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--flickr8k", help="the Flickr8k folder: images/, Flickr8k.token.txt and the official split files")
    src.add_argument("--images", help="a folder of images (with --captions)")
    src.add_argument("--hf-dataset", help="a Hugging Face image-caption dataset, or a local imagefolder")
    t.add_argument("--captions", help="with --images: Flickr8k token file, JSON, JSONL or CSV of captions")
    t.add_argument("--train-split", help="with --images: a file listing the training images")
    t.add_argument("--val-split", help="with --images: a file listing the validation images")
    t.add_argument("--hf-split", default="train")
    t.add_argument("--hf-val-split", default=None, help="the dataset's validation split (default: 10%% of train)")
    t.add_argument("--out", required=True)
    t.add_argument("--cache-dir", default=None, help="keep the decoded images here for the next run")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train.caption", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command")

    t = sub.add_parser("train", help="train a model (the default command)")
    add_data_args(t)
    t.add_argument("--encoder", default="cnn", choices=ENCODERS)
    t.add_argument("--pretrained", action="store_true", help="torchvision's ImageNet weights (downloaded)")
    t.add_argument("--encoder-weights", help="ImageNet weights from a file (.pth or .safetensors)")
    t.add_argument("--freeze-encoder", action="store_true", help="train the decoder only; features are cached")
    t.add_argument("--image-size", type=int, default=224)
    t.add_argument("--load-size", type=int, default=0, help="decode images at this size (crops are taken from it)")
    t.add_argument("--no-augment", action="store_true", help="no random crops or mirroring")
    t.add_argument("--min-count", type=int, default=5, help="rarer words become <unk>")
    t.add_argument("--embedding-dim", type=int, default=256)
    t.add_argument("--hidden-size", type=int, default=512)
    t.add_argument("--attention-dim", type=int, default=256)
    t.add_argument("--dropout", type=float, default=0.3)
    t.add_argument("--attention-reg", type=float, default=1.0, help="doubly stochastic attention regulariser weight")
    t.add_argument("--word-loss", type=float, default=0.0,
                   help="weight of the auxiliary loss that trains the encoder to name the captions' words")
    t.add_argument("--batch-size", type=int, default=32, help="images per step")
    t.add_argument("--captions-per-image", type=int, default=1,
                   help="captions decoded per image in a step (the CNN runs once for all of them)")
    add_loop_args(t, steps=100_000, lr=1e-3, warmup=200, eval_interval=500,
                  steps_help="a step cap; --time-budget usually ends training first")
    t.add_argument("--val-bleu-images", type=int, default=300, help="validation images captioned at each evaluation")
    t.set_defaults(func=cmd_train)

    r = sub.add_parser("scst", help="fine-tune a trained model's decoder on a caption metric (self-critical sequence training)")
    r.add_argument("--init", required=True, help="the model folder to start from (a train run's output)")
    add_data_args(r)
    r.add_argument("--reward", default="cider", choices=REWARDS,
                   help="what a sampled caption is scored by against its image's training captions")
    r.add_argument("--samples", type=int, default=5, help="captions sampled per image; each is judged against the others")
    r.add_argument("--batch-size", type=int, default=16, help="images per step")
    r.add_argument("--max-len", type=int, default=25, help="the longest sampled caption, in words")
    # the learning rates of the shipped model's stage 2; twice that made the BLEU reward game the metric (README)
    add_loop_args(r, steps=100_000, lr=4e-5, warmup=20, eval_interval=100,
                  steps_help="a step cap; --time-budget usually ends training first")
    r.set_defaults(func=cmd_scst, min_lr=1e-5)

    e = sub.add_parser("evaluate", help="COCO BLEU-1..4 and CIDEr of a checkpoint on captioned images")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--images", required=True)
    e.add_argument("--captions", required=True)
    e.add_argument("--split", default=None, help="a file listing the images to use (default: every captioned image)")
    e.add_argument("--beam", type=int, default=3)
    e.add_argument("--alpha", type=float, default=1.0, help="length normalisation strength")
    e.add_argument("--limit", type=int, default=0)
    e.add_argument("--batch-size", type=int, default=50)
    e.add_argument("--show", type=int, default=0, help="print N example captions to stderr")
    e.add_argument("--record", action="store_true", help="append the result to the checkpoint's model card")
    e.add_argument("--threads", type=int, default=0)
    e.set_defaults(func=cmd_evaluate)

    c = sub.add_parser("caption", help="caption image files")
    c.add_argument("--checkpoint", default="checkpoints/caption-flickr8k")
    c.add_argument("images", nargs="+")
    c.add_argument("--beam", type=int, default=3)
    c.add_argument("--alpha", type=float, default=1.0)
    c.add_argument("--threads", type=int, default=0)
    c.set_defaults(func=cmd_caption)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parse_command_line(build_parser(), argv)
    args.func(args)


if __name__ == "__main__":
    main()
