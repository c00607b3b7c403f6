"""Loading and batching data: text for the character language model, sentence pairs for translation.

Text comes from a UTF-8 file or a Hugging Face dataset; either way it is checked (empty, not UTF-8, too
short) and reported with a ``DataError`` whose message a person can act on. The text split is nanoGPT's:
the first 90% trains, the last 10% validates, so figures compare with its Tiny Shakespeare results.

Sentence pairs come from a tab-separated file (``english<TAB>french[<TAB>anything]``, the manythings /
Tatoeba format) or a Hugging Face translation dataset; they are split by English sentence (see
``split_of``) so that no English sentence has translations on both sides of a split.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from .tokenizers import BOS_ID, EOS_ID, PAD_ID


class DataError(Exception):
    """Training or evaluation data that cannot be used; the message says what is wrong with it."""


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file (Windows line endings become \\n); raise DataError when unusable."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"text file not found: {path}")
    raw = path.read_bytes()
    if not raw:
        raise DataError(f"{path} is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            f"{path} is not UTF-8 text (byte {e.start}, line {line}); convert it first, e.g. "
            f"`iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8.txt`"
        ) from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n")


def _load_hf_dataset(name: str, split: str, config: str | None):
    """A dataset split from the hub, a ``save_to_disk`` folder, or a local .txt/.csv/.json/.jsonl/.parquet."""
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is in requirements.txt
        raise DataError("the `datasets` package is needed for --hf-dataset: pip install datasets") from None
    local = Path(name)
    try:
        if local.is_dir() and (local / "dataset_info.json").exists():
            ds = datasets.load_from_disk(str(local))  # a folder written by Dataset.save_to_disk
            if isinstance(ds, datasets.DatasetDict):
                ds = ds[split]
        elif local.is_file():
            kind = {".txt": "text", ".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}.get(local.suffix)
            if kind is None:
                raise DataError(f"cannot tell the format of {local}; use .txt, .csv, .json, .jsonl or .parquet")
            ds = datasets.load_dataset(kind, data_files=str(local), split="train")
        else:
            ds = datasets.load_dataset(name, config, split=split)
    except DataError:
        raise
    except Exception as e:  # hub, network and format errors all arrive here; say which dataset failed
        raise DataError(f"could not load dataset {name!r} (split {split!r}): {type(e).__name__}: {e}") from None
    return ds


def load_hf_text(name: str, column: str, split: str = "train", config: str | None = None) -> str:
    """Join one text column of a Hugging Face dataset (hub name or local folder/file) with newlines."""
    ds = _load_hf_dataset(name, split, config)
    if column not in ds.column_names:
        raise DataError(f"dataset {name!r} has no column {column!r}; its columns are: {', '.join(ds.column_names)}")
    text = "\n".join(str(t) for t in ds[column] if t is not None)
    if not text.strip():
        raise DataError(f"column {column!r} of dataset {name!r} is empty")
    return text


def split_ids(ids: torch.Tensor, train_fraction: float = 0.9) -> tuple[torch.Tensor, torch.Tensor]:
    n = int(train_fraction * len(ids))
    return ids[:n], ids[n:]


class CharLMTask:
    """Random windows of the training text; validation reads the whole validation text statefully."""

    def __init__(self, train_ids: torch.Tensor, val_ids: torch.Tensor, batch_size: int, seq_len: int,
                 save: Callable[[Any, Path, dict], None], eval_streams: int = 16):
        if len(train_ids) < seq_len + 2:
            raise DataError(
                f"the training text is too short: {len(train_ids)} characters for sequences of {seq_len}; "
                f"use more text or a smaller --seq-len"
            )
        if len(val_ids) < 2:
            raise DataError("the validation split is empty: the text needs at least a few hundred characters")
        self.train_ids, self.val_ids = train_ids, val_ids
        self.batch_size, self.seq_len, self.eval_streams = batch_size, seq_len, eval_streams
        self.save = save  # (model, folder, metrics) -> None: the script knows the tokenizer and the card

    def get_batch(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        T = self.seq_len
        starts = torch.randint(len(self.train_ids) - T - 1, (self.batch_size,), generator=generator)
        offsets = starts[:, None] + torch.arange(T + 1)  # (B, T+1)
        window = self.train_ids[offsets]
        return {"idx": window[:, :-1], "targets": window[:, 1:]}

    def evaluate(self, model) -> dict[str, float]:
        loss = stream_loss(model, self.val_ids, streams=self.eval_streams, chunk=self.seq_len)
        return {"val_loss": loss, "val_bpc": loss / math.log(2)}


@torch.no_grad()
def stream_loss(model, ids: torch.Tensor, streams: int = 16, chunk: int = 256) -> float:
    """Mean nats per predicted character over all of ``ids``, carrying the recurrent state throughout.

    The text is cut into ``streams`` contiguous pieces read side by side (one batch row each), chunk by
    chunk, so every character but the first of each piece is predicted with all the context before it
    in its piece. The mean is over every predicted character, exactly once.
    """
    device = next(model.parameters()).device
    ids = ids.to(device)
    n = len(ids) - 1  # characters that have a next character to predict
    streams = max(1, min(streams, n))
    length = math.ceil(n / streams)
    pad = streams * length - n
    x = F.pad(ids[:-1], (0, pad)).view(streams, length)
    y = F.pad(ids[1:], (0, pad), value=-100).view(streams, length)  # -100: ignored by cross_entropy
    state, total = None, 0.0
    for t in range(0, length, chunk):
        out = model(x[:, t:t + chunk], state=state)
        state = out.state
        total += F.cross_entropy(out.logits.float().flatten(0, 1), y[:, t:t + chunk].flatten(),
                                 ignore_index=-100, reduction="sum").item()
    return total / n


# --------------------------------------------------------------------------- sentence pairs

Pair = tuple[str, str]  # (source, target) once the direction is applied; (first, second column) before


@dataclass
class PairsFile:
    pairs: list[Pair]
    skipped: int  # malformed lines: fewer than two columns, or an empty side


def read_pairs(path: str | Path) -> PairsFile:
    """Tab-separated pairs, one per line; a third column (attribution) is ignored, bad lines are counted."""
    pairs, skipped = [], 0
    for line in read_text(path).split("\n"):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) < 2 or not cols[0].strip() or not cols[1].strip():
            skipped += 1
            continue
        pairs.append((cols[0].strip(), cols[1].strip()))
    if not pairs:
        raise DataError(f"{path} has no usable pairs: each line needs `source<TAB>target` ({skipped} malformed lines)")
    return PairsFile(pairs, skipped)


def load_hf_pairs(name: str, first: str = "en", second: str = "fr", split: str = "train",
                  config: str | None = None) -> PairsFile:
    """A Hugging Face translation dataset: rows of {"translation": {"en": ..., "fr": ...}}."""
    ds = _load_hf_dataset(name, split, config)
    if "translation" not in ds.column_names:
        raise DataError(f"dataset {name!r} has no 'translation' column; its columns are: {', '.join(ds.column_names)}")
    pairs, skipped = [], 0
    for row in ds["translation"]:
        a = row.get(first) if isinstance(row, dict) else None
        b = row.get(second) if isinstance(row, dict) else None
        if not isinstance(a, str) or not isinstance(b, str) or not a.strip() or not b.strip():
            skipped += 1
            continue
        pairs.append((a.strip(), b.strip()))
    if not pairs:
        raise DataError(f"dataset {name!r} has no rows with both {first!r} and {second!r} ({skipped} skipped)")
    return PairsFile(pairs, skipped)


def split_of(sentence: str, val_fraction: float = 0.05, test_fraction: float = 0.05) -> str:
    """"train", "val" or "test" for a sentence, from a hash of its lower-cased, space-collapsed form.

    Every translation of one sentence lands in the same split (Tatoeba often has several), so a test
    sentence was never seen in training with another translation. A hash rather than a shuffle keeps a
    sentence's split when the file grows or is reordered.
    """
    key = " ".join(sentence.lower().split()).encode("utf-8")
    u = int.from_bytes(hashlib.md5(key).digest()[:8], "big") / 2**64
    return "test" if u < test_fraction else "val" if u < test_fraction + val_fraction else "train"


def split_pairs(pairs: list[Pair], val_fraction: float = 0.05, test_fraction: float = 0.05) -> dict[str, list[Pair]]:
    """Split by the first column (the English side in eng-fra.txt), whatever the direction trained."""
    out: dict[str, list[Pair]] = {"train": [], "val": [], "test": []}
    for p in pairs:
        out[split_of(p[0], val_fraction, test_fraction)].append(p)
    return out


def group_references(pairs: list[Pair]) -> tuple[list[str], list[list[str]]]:
    """Distinct sources in order of first appearance, each with all its targets (multi-reference BLEU)."""
    refs: dict[str, list[str]] = {}
    for src, tgt in pairs:
        refs.setdefault(src, []).append(tgt)
    return list(refs), list(refs.values())


def pad_batch(seqs: list[list[int]], pad: int = PAD_ID) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists -> (B, T) padded with ``pad``, and their lengths (B,)."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    out = torch.full((len(seqs), max(1, int(lengths.max()))), pad, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.tensor(s, dtype=torch.long)
    return out, lengths


class PairsTask:
    """Batches of similar-length sentence pairs; validation is teacher-forced loss per target token.

    Examples are token ids: (source, target) without <s> or </s>; the task adds them. Batches hold up to
    ``max_tokens`` tokens (longest side x sentences), so short sentences come in large batches and long
    ones in small, and little of a batch is padding.
    """

    def __init__(self, train: list[tuple[list[int], list[int]]], val: list[tuple[list[int], list[int]]],
                 save: Callable[[Any, Path, dict], None], max_tokens: int = 4096, max_len: int = 128,
                 bos: int = BOS_ID, eos: int = EOS_ID, seed: int = 0, extra_eval: Callable[[Any], dict] | None = None):
        if not train:
            raise DataError("no training pairs")
        if not val:
            raise DataError("the validation split is empty: the pairs file needs a few hundred distinct sources")
        self.bos, self.eos, self.max_len = bos, eos, max_len
        self.save, self.extra_eval = save, extra_eval
        self.train_batches = self._batches(train, max_tokens, random.Random(seed))
        self.val_batches = self._batches(val, max_tokens, None)
        self.val_tokens = sum(len(t) + 1 for _, t in val)

    def _batches(self, examples, max_tokens: int, rng: random.Random | None) -> list[dict[str, torch.Tensor]]:
        examples = [(s[:self.max_len], t[:self.max_len - 1]) for s, t in examples if s and t]
        # sort by length (random tie order for training) and cut into token-budgeted runs
        noise = (lambda: rng.random()) if rng else (lambda: 0.0)
        examples.sort(key=lambda e: (len(e[0]), len(e[1]), noise()))
        batches, run, longest = [], [], 0
        for ex in examples:
            longest_next = max(longest, len(ex[0]), len(ex[1]) + 1)
            if run and longest_next * (len(run) + 1) > max_tokens:
                batches.append(self._collate(run))
                run, longest_next = [], max(len(ex[0]), len(ex[1]) + 1)
            run.append(ex)
            longest = longest_next
        if run:
            batches.append(self._collate(run))
        return batches

    def _collate(self, run) -> dict[str, torch.Tensor]:
        src, src_len = pad_batch([s for s, _ in run])
        tgt_in, _ = pad_batch([[self.bos] + t for _, t in run])
        tgt_out, _ = pad_batch([t + [self.eos] for _, t in run])
        return {"src": src, "src_len": src_len, "tgt_in": tgt_in, "tgt_out": tgt_out}

    def get_batch(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return self.train_batches[int(torch.randint(len(self.train_batches), (1,), generator=generator))]

    @staticmethod
    def count_tokens(batch: dict[str, torch.Tensor]) -> int:
        return int((batch["tgt_out"] != PAD_ID).sum())

    def evaluate(self, model) -> dict[str, float]:
        device = next(model.parameters()).device
        total = 0.0
        for batch in self.val_batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(batch["src"], batch["src_len"], batch["tgt_in"]).logits
            # plain cross-entropy, not the label-smoothed training loss, so it reads as a log-likelihood
            total += F.cross_entropy(logits.float().flatten(0, 1), batch["tgt_out"].flatten(), ignore_index=PAD_ID,
                                     reduction="sum").item()
        loss = total / self.val_tokens
        metrics = {"val_loss": loss, "val_ppl": math.exp(min(loss, 50.0))}
        if self.extra_eval is not None:
            metrics.update(self.extra_eval(model))
        return metrics


# --------------------------------------------------------------------------- image captions

_PUNCT = re.compile(r"[^\w\s']|_")


def caption_words(text: str) -> list[str]:
    """Lower-cased words without punctuation: how captions are trained on and scored (as COCO's PTB step does)."""
    return _PUNCT.sub(" ", text.lower().replace("'s", " 's")).split()


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
        ds = _load_hf_dataset(name, split, config)
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


def augment(images: torch.Tensor, size: int, generator: torch.Generator, min_scale: float = 0.75) -> torch.Tensor:
    """Random square crops (75-100% of the side) resized to ``size``, half of them mirrored: uint8 (B, 3, L, L) in, out."""
    B, _, L, _ = images.shape
    out = torch.empty(B, 3, size, size, dtype=torch.uint8)
    sides = (L * (min_scale + (1 - min_scale) * torch.rand(B, generator=generator))).long().clamp(8, L)
    flips = torch.rand(B, generator=generator) < 0.5
    for i in range(B):
        s = int(sides[i])
        y, x = (torch.randint(L - s + 1, (2,), generator=generator)).tolist()
        crop = images[i:i + 1, :, y:y + s, x:x + s].float()
        crop = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[i] = crop[0].round().clamp(0, 255).to(torch.uint8)
        if flips[i]:
            out[i] = out[i].flip(-1)
    return out


def center_resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (B, 3, L, L) -> (B, 3, size, size), the evaluation view (no crop, no flip)."""
    if images.shape[-1] == size:
        return images
    x = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)


class CaptionTask:
    """Batches of images with one or more of their captions; validation is teacher-forced loss over every dev caption.

    Images are decoded once into a uint8 tensor (B, 3, L, L); training batches are augmented from it on the
    fly. When the model's encoder is frozen, its features are computed once and the batches carry them
    instead of images (feature caching).
    """

    def __init__(self, train_images: torch.Tensor, train_caps: list[list[list[int]]], val_images: torch.Tensor,
                 val_caps: list[list[list[int]]], save: Callable[[Any, Path, dict], None], batch_size: int,
                 image_size: int, augment_images: bool = True, max_len: int = 40,
                 extra_eval: Callable[[Any], dict] | None = None, captions_per_image: int = 1):
        if len(train_images) == 0 or len(val_images) == 0:
            raise DataError("captioning needs training and validation images")
        self.train_images, self.val_images = train_images, val_images
        self.train_caps = [[c[:max_len] for c in caps] for caps in train_caps]
        self.val_caps = [[c[:max_len] for c in caps] for caps in val_caps]
        self.batch_size, self.image_size, self.augment = batch_size, image_size, augment_images
        self.save, self.extra_eval = save, extra_eval
        if captions_per_image < 1:
            raise DataError("captions_per_image must be at least 1")
        self.captions_per_image = captions_per_image
        self.features: torch.Tensor | None = None

    @torch.no_grad()
    def cache_features(self, model, batch: int = 64) -> None:
        """Frozen encoder: compute the training images' grids once (no augmentation then)."""
        model.eval()
        self.features = torch.cat([model.features(center_resize(self.train_images[i:i + batch], self.image_size))
                                   for i in range(0, len(self.train_images), batch)])
        model.train()

    def _tokens(self, caps: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        tokens_in, _ = pad_batch([[BOS_ID] + c for c in caps])
        tokens_out, _ = pad_batch([c + [EOS_ID] for c in caps])
        return tokens_in, tokens_out

    def get_batch(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``batch_size`` images, each with ``captions_per_image`` of its captions (distinct while it has enough).

        With more than one caption per image the batch carries ``image_index``: caption row -> image row.
        """
        k = self.captions_per_image
        idx = torch.randint(len(self.train_images), (self.batch_size,), generator=generator)
        caps, image_index = [], []
        for row, i in enumerate(idx.tolist()):
            own = self.train_caps[i]
            order = torch.randperm(len(own), generator=generator).tolist()
            for j in range(k):
                caps.append(own[order[j % len(own)]])
                image_index.append(row)
        tokens_in, tokens_out = self._tokens(caps)
        batch = {"tokens_in": tokens_in, "tokens_out": tokens_out}
        if k > 1:
            batch["image_index"] = torch.tensor(image_index)
        if self.features is not None:
            return {"features": self.features[idx], **batch}
        images = self.train_images[idx]
        images = augment(images, self.image_size, generator) if self.augment else center_resize(images, self.image_size)
        return {"images": images, **batch}

    @staticmethod
    def count_tokens(batch: dict[str, torch.Tensor]) -> int:
        return int((batch["tokens_out"] != PAD_ID).sum())

    def evaluate(self, model, batch: int = 50) -> dict[str, float]:
        device = next(model.parameters()).device
        total, count = 0.0, 0
        for i in range(0, len(self.val_images), batch):
            feats = model.features(center_resize(self.val_images[i:i + batch], self.image_size).to(device))
            ctx, state = model.encode_features(feats)
            caps = self.val_caps[i:i + batch]
            for k in range(max(len(c) for c in caps)):  # the k-th caption of every image that has one
                rows = [j for j, c in enumerate(caps) if k < len(c)]
                tokens_in, tokens_out = self._tokens([caps[j][k] for j in rows])
                index = torch.tensor(rows, device=device)
                sub_ctx = type(ctx)(*(t.index_select(0, index) for t in ctx))
                sub_state = tuple(s.index_select(0, index) for s in state)
                logits = model.decode(tokens_in.to(device), sub_state, sub_ctx)[0]
                total += F.cross_entropy(logits.float().flatten(0, 1), tokens_out.to(device).flatten(),
                                         ignore_index=PAD_ID, reduction="sum").item()
                count += int((tokens_out != PAD_ID).sum())
        loss = total / count
        metrics = {"val_loss": loss, "val_ppl": math.exp(min(loss, 50.0))}
        if self.extra_eval is not None:
            metrics.update(self.extra_eval(model))
        return metrics
