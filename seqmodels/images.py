"""Reading images safely and turning them into tensors for the captioning model, and the training views of them.

``open_image`` accepts a path, bytes or a PIL image and returns an RGB image, or raises ``ImageError``
with a message a person can act on. It defends against what uploads bring: files that are not images,
truncated files, decompression bombs (the pixel count is checked from the header, before decoding),
EXIF rotation, animations (frame 0 is used), transparency (composited onto white), and the modes
L, LA, P, PA, 1, CMYK, I, I;16 and F.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000  # about 6,300 x 6,300: larger photos are refused before any pixel is decoded
FITS = ("crop", "squash")  # how a photo becomes the model's square: see ``fit_square``


class ImageError(ValueError):
    """An image that cannot be used; the message says why."""


def _to_8bit(im: Image.Image) -> Image.Image:
    """High-bit-depth greyscale (I;16, I, F) scaled to 0-255 by its own range, as a viewer would show it."""
    arr = np.asarray(im, dtype=np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
    return Image.fromarray(scaled.round().astype(np.uint8), mode="L")


def open_image(source, min_side: int | None = None) -> tuple[Image.Image, list[str]]:
    """(RGB image, notes) from a path, bytes or a PIL image; ImageError when it cannot be used.

    ``min_side``: the size the caller will shrink to; a JPEG is then decoded at a reduced scale that
    keeps at least that many pixels (libjpeg's DCT scaling: several times faster for large photos).
    """
    notes: list[str] = []
    try:
        if isinstance(source, Image.Image):
            im = source
        else:
            stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else open(Path(source), "rb")
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                im = Image.open(stream)
        w, h = im.size
        if w * h > MAX_PIXELS:
            raise ImageError(f"the image is {w:,} x {h:,} pixels; the limit is {MAX_PIXELS / 1e6:.0f} million pixels")
        if w < 1 or h < 1:
            raise ImageError("the image has no pixels")
        if getattr(im, "n_frames", 1) > 1:
            im.seek(0)
            notes.append(f"the image is animated ({im.n_frames} frames); the first frame was used")
        if min_side and im.format == "JPEG":
            im.draft("RGB", (min_side, min_side))
        im.load()  # decode now: a truncated file fails here, not later
        im = ImageOps.exif_transpose(im)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"image file not found: {source}") from None
    except IsADirectoryError:
        raise ImageError(f"{source} is a folder, not an image") from None
    except UnidentifiedImageError:
        raise ImageError("the file is not an image Pillow can read (JPEG, PNG, GIF, WebP, BMP, TIFF, ...)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"the image has too many pixels (over {MAX_PIXELS / 1e6:.0f} million)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"the image is damaged or truncated ({e})") from None
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        im = _to_8bit(im)
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, rgba)
        notes.append("transparent areas were shown on white")
    if im.mode != "RGB":
        im = im.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    return im, notes


def resize_center(im: Image.Image, size: int) -> Image.Image:
    """Scale the shorter side to ``size`` and crop the centre square (what the model was trained on)."""
    w, h = im.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if im.size != (nw, nh):
        im = im.resize((nw, nh), Image.BICUBIC, reducing_gap=3.0)
    left, top = (nw - size) // 2, (nh - size) // 2
    return im.crop((left, top, left + size, top + size))


def to_uint8_tensor(im: Image.Image) -> torch.Tensor:
    """RGB image -> (3, H, W) uint8."""
    return torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def normalize_batch(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(B, 3, H, W) uint8 -> float in [0, 1], then (x - mean) / std per channel (each encoder's own statistics)."""
    x = images.float().div_(255.0)
    return (x - torch.tensor(mean, device=x.device).view(1, 3, 1, 1)) / torch.tensor(std, device=x.device).view(1, 3, 1, 1)


def fit_square(im: Image.Image, size: int, fit: str) -> Image.Image:
    """The model's square view of a photo: ``crop`` scales the shorter side and keeps the centre; ``squash``
    resizes the whole photo to size x size, as Flickr8k's 224 x 224 copies were made (a model trained on
    squashed photos should see uploads squashed too, and then its attention grid covers the whole photo)."""
    if fit == "crop":
        return resize_center(im, size)
    if fit != "squash":
        raise ValueError(f"fit must be one of {', '.join(FITS)}, not {fit!r}")
    return im if im.size == (size, size) else im.resize((size, size), Image.BICUBIC, reducing_gap=3.0)


TINY_SIDE = 32  # px: below this a photo holds too little for a captioner that learned from 500 px photos
FLAT_STD = 4.0  # of 255: a photo whose pixels vary less than this is one colour to the eye
# Flickr8k's photos are 4:3 or 3:4; past 3:1 a squashed panorama's people and dogs are a third as wide as they were
# (a newcomer's 6000 x 400 panorama came back as a thin strip with a poor caption and no word why)
EXTREME_ASPECT = 3.0


def load_for_model(source, size: int, fit: str = "crop") -> tuple[torch.Tensor, Image.Image, list[str]]:
    """(uint8 tensor (3, size, size), the photo as read (RGB, upright), notes) for one image.

    A captioner always answers with a sentence like those it learned: a newcomer's 1 x 1 pixel or flat grey image
    got "a large group of people ..." and no word of warning, so the notes say when there is little to describe."""
    im, notes = open_image(source, min_side=size)
    pixels = to_uint8_tensor(fit_square(im, size, fit))
    if min(im.size) < TINY_SIDE:
        notes.append(f"the image is only {im.size[0]} x {im.size[1]} pixels, so there is little to describe; the "
                     "caption is the model's guess")
    elif pixels.float().std(dim=(1, 2)).max() < FLAT_STD:  # per channel: a flat blue's channels differ from each other
        notes.append("the image is almost one flat colour, so there is nothing to describe; the caption is the "
                     "model's guess")
    aspect = max(im.size) / min(im.size)
    if fit == "squash" and aspect > EXTREME_ASPECT:
        notes.append(f"the image is {aspect:.0f} times as {'wide' if im.width > im.height else 'tall'} as it is "
                     f"{'tall' if im.width > im.height else 'wide'}; the model sees it squashed into a square, so what is "
                     "in it looks thinner than it is, and the caption may miss it")
    return pixels, im, notes


# --------------------------------------------------------------------------- training views

def augment(images: torch.Tensor, size: int, generator: torch.Generator, min_scale: float = 0.75) -> torch.Tensor:
    """Random square crops (75-100% of the side) resized to ``size``, half of them mirrored: uint8 (B, 3, L, L) in, out.

    torchvision's functional transforms crop, resize (bilinear, antialiased) and mirror; the random draws come from
    ``generator`` rather than from its random transforms, which draw from the global RNG, so a seeded run sees the
    same views. Imported here: only training from images needs it (requirements-train.txt), never the app."""
    from torchvision.transforms.v2 import functional as TF
    B, _, L, _ = images.shape
    sides = (L * (min_scale + (1 - min_scale) * torch.rand(B, generator=generator))).long().clamp(8, L)
    flips = torch.rand(B, generator=generator) < 0.5
    views = []
    for i in range(B):
        s = int(sides[i])
        y, x = (torch.randint(L - s + 1, (2,), generator=generator)).tolist()
        view = TF.resized_crop(images[i], y, x, s, s, [size, size], antialias=True)
        views.append(TF.horizontal_flip(view) if flips[i] else view)
    return torch.stack(views)


def center_resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (B, 3, L, L) -> (B, 3, size, size), the evaluation view (no crop, no flip)."""
    if images.shape[-1] == size:
        return images
    from torchvision.transforms.v2 import functional as TF
    return TF.resize(images, [size, size], antialias=True)
