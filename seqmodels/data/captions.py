"""Images with captions for the captioner: caption files, splits, decoded images and cached encoder grids.

Captions files: the Flickr8k token format (``name.jpg#0<TAB>caption``), JSON ``{"name.jpg": ["caption", ...]}``,
or JSONL/CSV rows with ``image`` and ``caption``; or a Hugging Face image-caption dataset. Images named in a
captions file but absent from the folder are skipped and counted.

Images are decoded once into a uint8 tensor (N, 3, S, S) (cached on disk when asked: about a minute for
Flickr8k). A frozen encoder's grids are computed once too and cached in fp16 (``encode_grids``), so
training the decoder, self-critical training and evaluation never run the CNN again.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from ..checkpoint import CheckpointSpec
from ..files import atomic_save_tensors, atomic_write_text
from ..image_captioner import ImageCaptioner
from ..images import ImageError, augment, center_resize, load_for_model
from ..metrics import greedy_caption_scores
from ..tokenizers import BOS_ID, EOS_ID, PAD_ID, caption_words
from . import DataError, load_hf_dataset, pad_batch, read_text

log = logging.getLogger("seqmodels.data")


@dataclass
class CaptionSet:
    captions: dict[str, list[str]]  # image file name -> its captions, for images that exist
    folder: Path | None  # where the images are (None: images are in ``images``)
    missing: int = 0  # images named in the captions file but absent from the folder (skipped)
    skipped_lines: int = 0  # malformed caption lines
    images: dict[str, Any] | None = None  # name -> PIL image, for datasets that carry the pixels


def read_captions(path: str | Path) -> tuple[dict[str, list[str]], int]:
    """Captions from the Flickr8k token format (``name.jpg#0<TAB>caption``), JSON ``{"name": [captions]}``,
    JSONL/CSV rows with ``image`` (or ``file_name``) and ``caption`` (or ``text``) fields.
    Returns (captions by image name, malformed lines skipped)."""
    path = Path(path)
    text = read_text(path)
    caps: dict[str, list[str]] = {}
    skipped = 0

    def add(name, caption):
        nonlocal skipped
        if isinstance(caption, list):
            for c in caption:
                add(name, c)
            return
        if not isinstance(name, str) or not isinstance(caption, str) or not name.strip() or not caption_words(caption):
            skipped += 1
            return
        caps.setdefault(name.strip(), []).append(caption.strip())

    if path.suffix == ".json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path} is not valid JSON: {e}") from None
        if not isinstance(obj, dict):
            raise DataError(f'{path} must hold {{"image file name": ["caption", ...]}}')
        for name, c in obj.items():
            add(name, c if isinstance(c, list) else [c])
    elif path.suffix in (".jsonl", ".csv"):
        rows = []
        if path.suffix == ".jsonl":
            for line in text.splitlines():
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        skipped += 1
        else:
            rows = list(csv.DictReader(io.StringIO(text)))
        for row in rows:
            if not isinstance(row, dict):
                skipped += 1
                continue
            add(row.get("image", row.get("file_name")), row.get("caption", row.get("text")))
    else:  # Flickr8k.token.txt
        for line in text.splitlines():
            if not line.strip():
                continue
            name, sep, caption = line.partition("\t")
            if not sep:
                skipped += 1
                continue
            add(name.split("#")[0], caption)
    if not caps:
        raise DataError(f"{path} has no usable captions ({skipped} malformed lines)")
    return caps, skipped


def read_image_list(path: str | Path) -> list[str]:
    """A split file: one image file name per line (Flickr_8k.trainImages.txt)."""
    return [line.strip() for line in read_text(path).splitlines() if line.strip()]


def caption_set(images: str | Path, captions: str | Path, split: str | Path | None = None) -> CaptionSet:
    """Captions for the images of one folder (and one split file), counting the images that are missing."""
    folder = Path(images)
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    caps, skipped = read_captions(captions)
    if split is not None:
        wanted = read_image_list(split)
        missing_from_captions = [n for n in wanted if n not in caps]
        caps = {n: caps[n] for n in wanted if n in caps}
        skipped += len(missing_from_captions)
    present = {p.name for p in folder.iterdir()}
    kept = {n: c for n, c in caps.items() if n in present}
    if not kept:
        raise DataError(f"none of the {len(caps)} images named in {captions} is in {folder}")
    return CaptionSet(kept, folder, missing=len(caps) - len(kept), skipped_lines=skipped)


def load_hf_captions(name: str, split: str = "train", config: str | None = None, image_column: str = "image",
                     caption_column: str | None = None) -> CaptionSet:
    """A Hugging Face image-caption dataset (e.g. ``imagefolder`` with a metadata.jsonl of captions).

    A local folder is read with the ``imagefolder`` builder; the caption column is ``caption_column`` or
    the first of captions/caption/text/sentences; it may hold one string or a list of strings.
    """
    local = Path(name)
    if local.is_dir() and not (local / "dataset_info.json").exists():
        try:
            import datasets
            ds = datasets.load_dataset("imagefolder", data_dir=str(local), split=split)
        except Exception as e:
            raise DataError(f"could not read {local} as an imagefolder dataset: {type(e).__name__}: {e}") from None
    else:
        ds = load_hf_dataset(name, split, config)
    columns = ds.column_names
    if image_column not in columns:
        raise DataError(f"dataset {name!r} has no image column {image_column!r}; its columns are: {', '.join(columns)}")
    if caption_column is None:
        caption_column = next((c for c in ("captions", "caption", "text", "sentences") if c in columns), None)
    if caption_column not in columns:
        raise DataError(f"dataset {name!r} has no caption column; its columns are: {', '.join(columns)}")
    caps, images, skipped = {}, {}, 0
    for i, row in enumerate(ds):
        value = row[caption_column]
        texts = [value] if isinstance(value, str) else [v for v in (value or []) if isinstance(v, str)]
        texts = [t for t in texts if caption_words(t)]
        if row[image_column] is None or not texts:
            skipped += 1
            continue
        key = f"{i:07d}"
        caps[key], images[key] = texts, row[image_column]
    if not caps:
        raise DataError(f"dataset {name!r} has no rows with both an image and a caption")
    return CaptionSet(caps, None, skipped_lines=skipped, images=images)


def caption_ids(tokenizer, captions: list[str]) -> list[list[int]]:
    """Token ids of each caption, read as training and scoring read it (lower-cased words, no punctuation)."""
    return [tokenizer.encode(" ".join(caption_words(c))).ids for c in captions]


def _hold_out(data: CaptionSet, fraction: float = 0.1) -> tuple[CaptionSet, CaptionSet]:
    """(train, validation): ``fraction`` of the images, chosen by a fixed seed, validate."""
    keys = sorted(data.captions)
    random.Random(0).shuffle(keys)
    cut = max(1, int(len(keys) * fraction))
    val = CaptionSet({k: data.captions[k] for k in keys[:cut]}, data.folder, images=data.images)
    train = CaptionSet({k: data.captions[k] for k in keys[cut:]}, data.folder, missing=data.missing,
                       skipped_lines=data.skipped_lines, images=data.images)
    return train, val


def flickr8k_files(root: str | Path, split: str) -> tuple[Path, Path, Path]:
    """(images folder, captions file, image list) of one official Flickr8k split: train, dev or test."""
    root = Path(root)
    names = {"train": "trainImages", "dev": "devImages", "val": "devImages", "test": "testImages"}
    if split not in names:
        raise DataError(f"Flickr8k's splits are train, dev (val) and test, not {split!r}")
    return root / "images", root / "Flickr8k.token.txt", root / f"Flickr_8k.{names[split]}.txt"


def training_splits(flickr8k: str | None = None, images: str | None = None, captions: str | None = None,
                    train_list: str | None = None, val_list: str | None = None, hf_dataset: str | None = None,
                    hf_split: str = "train", hf_val_split: str | None = None,
                    hf_config: str | None = None) -> tuple[CaptionSet, CaptionSet, str]:
    """(train set, validation set, a description for the model card) from one of three sources: the Flickr8k
    folder (its official train and dev splits), a folder of images with a captions file (and optional image
    lists; without them 10% of the images validate), or a Hugging Face dataset."""
    if hf_dataset:
        train = load_hf_captions(hf_dataset, hf_split, hf_config)
        if hf_val_split:
            val = load_hf_captions(hf_dataset, hf_val_split, hf_config)
        else:
            train, val = _hold_out(train)
        _check_both_used(train, val)
        return train, val, f"Hugging Face dataset `{hf_dataset}`"
    if flickr8k:
        images, captions, train_list = flickr8k_files(flickr8k, "train")
        val_list = flickr8k_files(flickr8k, "dev")[2]
    if images is None or captions is None:
        raise DataError("give the Flickr8k folder, a Hugging Face dataset, or an image folder with its captions file")
    if (train_list is None) != (val_list is None):
        raise DataError("give both a training and a validation image list, or neither (then 10% of the images validate)")
    if train_list is None:
        train, val = _hold_out(caption_set(images, captions))
    else:
        train, val = caption_set(images, captions, train_list), caption_set(images, captions, val_list)
    if train.missing or val.missing:
        log.warning("skipped %d image(s) named in the captions but missing from the folder", train.missing + val.missing)
    _check_both_used(train, val)
    return train, val, f"images in `{Path(images).name}/`, captions `{Path(captions).name}`"


def _check_both_used(train: CaptionSet, val: CaptionSet) -> None:
    """A DataError unless both splits hold a captioned image (an empty one failed later, in the model's config, with
    a message about vocabulary sizes)."""
    for split, name in ((train, "training"), (val, "validation")):
        if not split.captions:
            raise DataError(f"no {name} images: {len(train.captions)} captioned image(s) to train on and "
                            f"{len(val.captions)} to validate; a captioner needs a few hundred at least (without "
                            "image lists, 10% of them validate)")


def decode_images(data: CaptionSet, names: list[str], size: int, fit: str = "crop",
                  cache_dir: str | Path | None = None) -> tuple[torch.Tensor, list[str], int]:
    """Decode every image once into uint8 (N, 3, size, size); returns (images, names kept, unreadable count).

    With ``cache_dir`` the tensor is stored there, keyed by the folder, the names, the size and the fit, so
    the next run skips the decoding (about a minute for Flickr8k here).
    """
    key = hashlib.sha256(f"{data.folder}|{size}|{fit}|{'|'.join(names)}".encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"images-{size}-{key}.safetensors" if cache_dir and data.folder else None
    if cache is not None and cache.is_file():
        kept = json.loads(cache.with_suffix(".json").read_text())
        return load_file(str(cache))["images"], kept, len(names) - len(kept)
    tensors, kept, bad = [], [], 0
    for name in names:
        source = data.images[name] if data.images is not None else data.folder / name
        try:
            tensor, _, _ = load_for_model(source, size, fit)
        except ImageError as e:
            log.warning("skipped %s: %s", name, e)
            bad += 1
            continue
        tensors.append(tensor)
        kept.append(name)
    if not tensors:
        raise DataError("none of the images could be read")
    images = torch.stack(tensors)
    if cache is not None:
        atomic_save_tensors(cache, {"images": images})
        atomic_write_text(cache.with_suffix(".json"), json.dumps(kept))
    return images, kept, bad


@torch.no_grad()
def encode_grids(model, images: torch.Tensor, cache_dir: str | Path | None = None, batch: int = 32,
                 progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """The frozen encoder's grids (N, h*w, C) in fp16 for uint8 images (N, 3, S, S), cached in ``cache_dir`` by a
    hash of the images and of the frozen weights (fp16 halves the 1 GB that Flickr8k's 7 x 7 x 1280 grids
    take; the decoder reads them as fp32). With top blocks fine-tuned, what the frozen blocks below give
    (``Captioner.cacheable``)."""
    digest = hashlib.sha256(images.numpy().tobytes())
    blocks = getattr(model.config, "fine_tune_blocks", 0)
    digest.update(f"below the last {blocks} blocks".encode() if blocks else b"")
    # the fine-tuned top's weights are left out: a resumed run's have changed, the frozen part it reads has not
    top = {id(p) for module in (model.encoder.top_modules(blocks) if blocks else []) for p in module.parameters()}
    for value in model.encoder.state_dict(keep_vars=True).values():
        if id(value) not in top:
            digest.update(value.detach().cpu().float().numpy().tobytes())
    cache = Path(cache_dir) / f"grids-{digest.hexdigest()[:16]}.safetensors" if cache_dir else None
    if cache is not None and cache.is_file():
        return load_file(str(cache))["grids"]
    was_training = model.training
    model.eval()
    grids = []
    for i in range(0, len(images), batch):
        grids.append(model.cacheable(images[i:i + batch]).half())
        if progress is not None:
            progress(min(i + batch, len(images)), len(images))
    model.train(was_training)
    out = torch.cat(grids)
    if cache is not None:
        atomic_save_tensors(cache, {"grids": out})
    return out


def teacher_forcing(caps: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens_in, tokens_out) of captions' word ids, padded: <s> w1..wn, and w1..wn </s> (``Captioner.forward``)."""
    tokens_in, _ = pad_batch([[BOS_ID] + c for c in caps])
    tokens_out, _ = pad_batch([c + [EOS_ID] for c in caps])
    return tokens_in, tokens_out


class CaptionTask:
    """Batches of images with one or more of their captions; validation is teacher-forced loss over every dev caption.

    Images come as uint8 tensors (N, 3, L, L): training batches are augmented from them on the fly. A frozen
    encoder's grids come instead as ``train_grids`` / ``val_grids`` (N, h*w, C) from ``encode_grids``, and the
    batches carry them (no augmentation then, and no CNN in the loop). Given ``bleu_refs``, the references of
    the first validation images, each evaluation also captions those images greedily and scores them.
    """

    def __init__(self, train_caps: list[list[list[int]]], val_caps: list[list[list[int]]],
                 checkpoint: CheckpointSpec, batch_size: int, image_size: int,
                 train_images: torch.Tensor | None = None, val_images: torch.Tensor | None = None,
                 train_grids: torch.Tensor | None = None, val_grids: torch.Tensor | None = None,
                 augment_images: bool = True, max_len: int = 40, bleu_refs: list[list[str]] | None = None,
                 captions_per_image: int = 1):
        self.train_inputs = train_grids if train_grids is not None else train_images
        self.val_inputs = val_grids if val_grids is not None else val_images
        if self.train_inputs is None or self.val_inputs is None or not len(self.train_inputs) or not len(self.val_inputs):
            raise DataError("captioning needs training and validation images")
        self.grids = train_grids is not None
        self.train_caps = [[c[:max_len] for c in caps] for caps in train_caps]
        self.val_caps = [[c[:max_len] for c in caps] for caps in val_caps]
        self.batch_size, self.image_size, self.augment = batch_size, image_size, augment_images
        self.checkpoint, self.bleu_refs = checkpoint, bleu_refs or []
        if captions_per_image < 1:
            raise DataError("captions_per_image must be at least 1")
        self.captions_per_image = captions_per_image

    def _inputs(self, source: torch.Tensor, idx, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The model's image-side input for rows ``idx``: cached grids, or images (augmented when training)."""
        if self.grids:
            return {"features": source[idx]}
        images = source[idx]
        if generator is not None and self.augment:
            return {"images": augment(images, self.image_size, generator)}
        return {"images": center_resize(images, self.image_size)}

    def get_batch(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``batch_size`` images, each with ``captions_per_image`` of its captions (distinct while it has enough).

        With more than one caption per image the batch carries ``image_index``: caption row -> image row.
        """
        k = self.captions_per_image
        idx = torch.randint(len(self.train_inputs), (self.batch_size,), generator=generator)
        caps, image_index = [], []
        for row, i in enumerate(idx.tolist()):
            own = self.train_caps[i]
            order = torch.randperm(len(own), generator=generator).tolist()
            for j in range(k):
                caps.append(own[order[j % len(own)]])
                image_index.append(row)
        tokens_in, tokens_out = teacher_forcing(caps)
        batch = {"tokens_in": tokens_in, "tokens_out": tokens_out}
        if k > 1:
            batch["image_index"] = torch.tensor(image_index)
        return {**self._inputs(self.train_inputs, idx, generator), **batch}

    @staticmethod
    def count_tokens(batch: dict[str, torch.Tensor]) -> int:
        return int((batch["tokens_out"] != PAD_ID).sum())

    def save(self, model, folder: Path, metrics: dict) -> None:
        self.checkpoint.write(folder, model, metrics)

    def evaluate(self, model, batch: int = 50) -> dict[str, float]:
        """Per-word cross-entropy of every validation caption, each image encoded once (the model's own
        forward with ``image_index``, as training calls it)."""
        device = next(model.parameters()).device
        total, count = 0.0, 0
        for i in range(0, len(self.val_inputs), batch):
            caps = self.val_caps[i:i + batch]
            rows = [j for j, own in enumerate(caps) for _ in own]
            tokens_in, tokens_out = teacher_forcing([c for own in caps for c in own])
            inputs = {k: v.to(device) for k, v in self._inputs(self.val_inputs, slice(i, i + batch)).items()}
            logits = model(**inputs, tokens_in=tokens_in.to(device), image_index=torch.tensor(rows, device=device)).logits
            total += F.cross_entropy(logits.float().flatten(0, 1), tokens_out.to(device).flatten(),
                                     ignore_index=PAD_ID, reduction="sum").item()
            count += int((tokens_out != PAD_ID).sum())
        loss = total / count
        metrics = {"val_loss": loss, "val_ppl": math.exp(min(loss, 50.0))}
        if self.bleu_refs:  # the first len(bleu_refs) validation images, captioned greedily: BLEU as it trains
            n = len(self.bleu_refs)
            scores = greedy_caption_scores(
                ImageCaptioner(model, self.checkpoint.tokenizer),
                (next(iter(self._inputs(self.val_inputs, slice(i, min(i + 100, n))).values())).to(device)
                 for i in range(0, n, 100)), self.bleu_refs)
            metrics.update(val_bleu4=scores["bleu4"], val_cider=scores["cider"], val_bleu_n=scores["n"])
        return metrics
