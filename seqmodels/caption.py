"""Image captioning with soft attention: Show, Attend and Tell (Xu et al. 2015).

    encoder: a CNN -> a grid of feature vectors (B, N = h x w, C), one per image region
    decoder: an LSTM that, before each word, attends over the grid (additive attention), gates the
             attended context with a scalar from its state (the paper's beta), and reads [word; context]

The decoder's first state comes from the mean feature (the paper's init_h, init_c). Training adds the
doubly stochastic regulariser: each region's attention summed over the caption should be near 1, so
the model looks at every part of the image at some point. Training (teacher forcing over the whole
caption) and search (one word at a time) both call ``decode``.

Encoders: ``cnn``, a compact ResNet trained from scratch (no ImageNet weights can be downloaded
everywhere); ``resnet18`` / ``resnet50``, torchvision's architectures, with ImageNet weights when
asked (``CaptionConfig.pretrained``), frozen or fine-tuned.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .images import normalize_batch
from .seq2seq import Attention, Context, searchable_log_probs
from .tokenizers import BOS_ID, EOS_ID, PAD_ID, UNK_ID

ENCODERS = ("cnn", "resnet18", "resnet50")
# tokens a caption never contains: <pad> and <s> are never targets, and <unk> (a word rarer than the vocabulary's
# minimum count) is one in training, but a caption that says "<unk>" tells the reader nothing: search and
# sampling take the best real word instead (without this, 7.5% of the shipped model's dev captions had one)
NEVER_SAID = (PAD_ID, BOS_ID, UNK_ID)


@dataclass
class CaptionConfig:
    vocab_size: int = 3000
    encoder: str = "cnn"  # cnn (from scratch) | resnet18 | resnet50 (torchvision)
    widths: tuple[int, ...] = (32, 64, 128, 256)  # cnn: channels of the stem and each stage (each halves the size)
    image_size: int = 224  # images are resized (shorter side) and centre-cropped to this square
    fine_tune_encoder: bool = True  # False: the encoder is frozen (its features can then be cached)
    pretrained: bool = False  # the encoder started from ImageNet weights (recorded, not loaded here)
    embedding_dim: int = 256
    hidden_size: int = 512
    attention_dim: int = 256
    dropout: float = 0.3
    attention_reg: float = 1.0  # lambda of the doubly stochastic attention regulariser (the paper uses 1)
    # weight of an auxiliary loss on the encoder: predict, from the mean feature, which words the image's
    # captions use (multi-label). A from-scratch CNN otherwise learns only through the attention of a
    # decoder that can lean on its language model; this names the objects to it directly. 0 = off (in a
    # 10-minute pilot on Flickr8k it did not lower the validation loss; see the README).
    word_loss: float = 0.0

    def __post_init__(self):
        self.widths = tuple(self.widths)  # JSON gives a list back
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}, not {self.encoder!r}")
        if self.vocab_size < 5 or self.hidden_size < 1 or self.embedding_dim < 1 or self.attention_dim < 1:
            raise ValueError("vocab_size, hidden_size, embedding_dim and attention_dim must be positive")
        if not 0 <= self.dropout < 1:
            raise ValueError("dropout must be in [0, 1)")
        if self.word_loss < 0:
            raise ValueError("word_loss must be >= 0")
        if self.image_size < 32:
            raise ValueError("image_size must be at least 32")

    @property
    def feature_dim(self) -> int:
        return {"cnn": self.widths[-1], "resnet18": 512, "resnet50": 2048}[self.encoder]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut (He et al. 2016); ``stride`` 2 halves the grid."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """A compact ResNet: a stride-2 stem, then one block per stage, each halving the grid.

    With widths (32, 64, 128, 256) a 224-pixel image gives a 14 x 14 grid of 256-d features (stride 16),
    the grid size Show, Attend and Tell attends over.
    """

    def __init__(self, widths: tuple[int, ...]):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        self.stages = nn.Sequential(*[BasicBlock(a, b, 2) for a, b in zip(widths[:-1], widths[1:])])

    def forward(self, x):
        return self.stages(self.stem(x))


def torchvision_backbone(name: str) -> nn.Module:
    """torchvision's ResNet without its pooling and classifier: (B, 3, 224, 224) -> (B, C, 7, 7)."""
    import torchvision

    net = getattr(torchvision.models, name)(weights=None)
    return nn.Sequential(*list(net.children())[:-2])


class CaptionOutput(NamedTuple):
    logits: torch.Tensor  # (B, T, V)
    loss: torch.Tensor | None  # cross-entropy over real words + attention regulariser
    attention: torch.Tensor  # (B, T, N)


# the decoder state: (h, c), each (B, H); batch is dim 0
State = tuple[torch.Tensor, torch.Tensor]


class Captioner(nn.Module):
    model_type = "captioner"
    config_class = CaptionConfig

    def __init__(self, config: CaptionConfig):
        super().__init__()
        self.config = c = config
        self.encoder = SmallResNet(c.widths) if c.encoder == "cnn" else torchvision_backbone(c.encoder)
        C, H = c.feature_dim, c.hidden_size
        self.embed = nn.Embedding(c.vocab_size, c.embedding_dim, padding_idx=PAD_ID)
        self.attention = Attention("additive", H, C, c.attention_dim)
        self.init_h, self.init_c = nn.Linear(C, H), nn.Linear(C, H)
        self.gate = nn.Linear(H, C)  # beta_t = sigmoid(f_beta(h_{t-1})): how much the image matters for this word
        self.cell = nn.LSTMCell(c.embedding_dim + C, H)
        self.drop = nn.Dropout(c.dropout)
        self.out = nn.Linear(H, c.vocab_size)
        self.words = nn.Linear(C, c.vocab_size) if c.word_loss else None  # the auxiliary word predictor
        if self.words is not None:  # start from "most words are absent" so the first steps are not spent on it
            nn.init.constant_(self.words.bias, -math.log(c.vocab_size))
        if not c.fine_tune_encoder:
            self.encoder.requires_grad_(False)

    # ------------------------------------------------------------------ encoder

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, S, S) or normalised float images -> grid features (B, N, C)."""
        x = normalize_batch(images) if images.dtype == torch.uint8 else images
        grid = self.encoder(x.to(memory_format=torch.channels_last))  # (B, C, h, w)
        return grid.flatten(2).transpose(1, 2)  # (B, N, C)

    def encode_features(self, feats: torch.Tensor) -> tuple[Context, State]:
        """Grid features (B, N, C) -> the decoder's context and first state (from the mean feature)."""
        feats = feats.float()
        mean = feats.mean(dim=1)  # (B, C)
        state = (torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean)))
        mask = torch.ones(feats.shape[:2], dtype=torch.bool, device=feats.device)
        return Context(feats, self.attention.keys(feats), mask), state

    def encode(self, images: torch.Tensor) -> tuple[Context, State]:
        return self.encode_features(self.features(images))

    # ------------------------------------------------------------------ decoder

    def decode(self, tokens: torch.Tensor, state: State, ctx: Context) -> tuple[torch.Tensor, State, torch.Tensor]:
        """Run the decoder over tokens (B, T) from ``state``: logits (B, T, V), new state, attention (B, T, N)."""
        emb = self.drop(self.embed(tokens))  # (B, T, E)
        h, c = state
        logits, alphas = [], []
        for t in range(tokens.size(1)):
            context, alpha = self.attention(h[:, None], ctx)  # (B, 1, C), (B, 1, N): queried by h_{t-1}
            context = torch.sigmoid(self.gate(h))[:, None] * context
            h, c = self.cell(torch.cat([emb[:, t], context[:, 0]], dim=-1), (h, c))
            logits.append(self.out(self.drop(h)))
            alphas.append(alpha[:, 0])
        return torch.stack(logits, 1), (h, c), torch.stack(alphas, 1)

    def forward(self, images: torch.Tensor | None = None, tokens_in: torch.Tensor | None = None,
                tokens_out: torch.Tensor | None = None, features: torch.Tensor | None = None,
                image_index: torch.Tensor | None = None) -> CaptionOutput:
        """Teacher forcing: tokens_in is <s> w1..wn, tokens_out w1..wn </s>, padded with PAD_ID.

        ``features`` replaces ``images`` when the encoder is frozen and its grid was cached.
        ``image_index`` (one entry per caption row) lets several captions share one image: the CNN, the
        costly half, then runs once per image instead of once per caption.
        """
        feats = features if features is not None else self.features(images)
        ctx, state = self.encode_features(feats)
        if image_index is not None:
            ctx, state = self.select_context(ctx, image_index), self.select_state(state, image_index)
        logits, _, alphas = self.decode(tokens_in, state, ctx)
        loss = None
        if tokens_out is not None:
            loss = F.cross_entropy(logits.float().flatten(0, 1), tokens_out.flatten(), ignore_index=PAD_ID)
            if self.config.attention_reg:
                real = (tokens_out != PAD_ID).float()[:, :, None]  # (B, T, 1): padding does not look
                coverage = (alphas.float() * real).sum(dim=1)  # (B, N): attention each region got
                loss = loss + self.config.attention_reg * ((1.0 - coverage) ** 2).mean()
            if self.words is not None:
                loss = loss + self.config.word_loss * self._word_loss(feats, tokens_out, image_index)
        return CaptionOutput(logits, loss, alphas)

    def _word_loss(self, feats: torch.Tensor, tokens_out: torch.Tensor, image_index: torch.Tensor | None):
        """Binary cross-entropy of "does any caption of this image use word w", from the mean feature."""
        B = feats.size(0)
        rows = image_index if image_index is not None else torch.arange(B, device=feats.device)
        present = torch.zeros(B, self.config.vocab_size, device=feats.device)
        present[rows[:, None].expand_as(tokens_out), tokens_out] = 1.0
        present[:, :EOS_ID + 1] = 0.0  # specials are not words of the image
        logits = self.words(feats.float().mean(dim=1))[:, EOS_ID + 1:]
        present = present[:, EOS_ID + 1:]
        # summed over the vocabulary, per word the image has: a mean over 3,000 mostly absent words would be
        # too weak a signal, and this keeps it on the scale of the caption loss
        bce = F.binary_cross_entropy_with_logits(logits, present, reduction="none").sum(dim=1)
        return (bce / present.sum(dim=1).clamp(min=1)).mean()

    # ------------------------------------------------------------------ the search contract

    bos_id, eos_id = BOS_ID, EOS_ID

    def begin(self, images: torch.Tensor) -> tuple[Context, State]:
        """Images (B, 3, S, S), or grid features (B, N, C) already computed (cached for a frozen encoder)."""
        images = images.to(self.out.weight.device)
        return self.encode_features(images) if images.dim() == 3 else self.encode(images)

    def step(self, tokens: torch.Tensor, state: State, ctx: Context) -> tuple[torch.Tensor, State, torch.Tensor]:
        logits, state, alphas = self.decode(tokens[:, None], state, ctx)
        return searchable_log_probs(logits[:, 0], NEVER_SAID), state, alphas[:, 0]

    @staticmethod
    def select_state(state: State, index: torch.Tensor) -> State:
        return tuple(s.index_select(0, index) for s in state)

    @staticmethod
    def select_context(ctx: Context, index: torch.Tensor) -> Context:
        return Context(*(t.index_select(0, index) for t in ctx))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def grid_shape(self) -> tuple[int, int]:
        """(h, w) of the attention grid for this model's image size."""
        with torch.no_grad():
            n = self.features(torch.zeros(1, 3, self.config.image_size, self.config.image_size, dtype=torch.uint8,
                                          device=self.out.weight.device)).size(1)
        side = int(round(n ** 0.5))
        return side, n // side
