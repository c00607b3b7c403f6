"""One decoding module for every generator in the project, with two contracts.

Language models (``CharLM``, and ``FastCharLM`` with pre-packed weights for single-stream CPU decoding)
implement ``Stepper``, which gives **logits**:

    start(prompt_ids) -> (logits (1, V), state)    # read the prompt
    step(tokens (B,), state) -> (logits (B, V), state)

on which ``generate`` (streaming), ``sample`` and ``greedy_continuation`` run, with temperature, top-k and top-p.

Conditional models (translation, captioning) implement ``Searchable``, batched, which gives
**log-probabilities** ready for search (tokens that are never outputs already at -inf):

    begin(inputs) -> (context, state)               # encode a batch of sources or images
    step_log_probs(tokens (N,), state, context) -> (log-probs (N, V), state, attention (N, S))
    select_state(state, index) / select_context(context, index)   # reorder rows for beams

on which ``search`` (greedy for beam 1, else beam search) returns n-best lists with scores and attention
weights; ``sample_sequences`` draws from the same distribution for self-critical training.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, NamedTuple, Protocol

import torch

from .tokenizers import BOS_ID, PAD_ID


class Stepper(Protocol):
    def start(self, prompt_ids: list[int]) -> tuple[torch.Tensor, Any]: ...

    def step(self, tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]: ...


@dataclass
class SamplingSettings:
    max_new_tokens: int = 500
    temperature: float = 1.0  # 0 means greedy: always the most likely token
    top_k: int = 0  # keep the k most likely tokens; 0 keeps all
    top_p: float = 1.0  # nucleus: the smallest set whose probability reaches p; 1 keeps all, 0 keeps one
    seed: int | None = None  # the same seed, prompt and settings give the same text

    def __post_init__(self):
        if self.max_new_tokens < 0:
            raise ValueError("max_new_tokens must be >= 0")
        if not self.temperature >= 0:  # also rejects NaN
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not 0.0 <= self.top_p <= 1.0:
            raise ValueError(f"top_p must be between 0 and 1, got {self.top_p}")

    @property
    def is_greedy(self) -> bool:
        return self.temperature == 0


class Token(NamedTuple):
    id: int
    prob: float  # the probability the model gave this token, before temperature and filtering
    top: tuple[tuple[int, float], ...] = ()  # (id, probability) of the likeliest tokens, when generate is asked


def filter_logits(logits: torch.Tensor, settings: SamplingSettings) -> torch.Tensor:
    """Apply temperature, top-k and top-p to logits (B, V); removed tokens get -inf."""
    # Shift so the best logit is 0, then scale by 1/T capped at 1e30: a tiny temperature sends the others
    # to -inf (the greedy limit) instead of making inf - inf or 0/0 (1e-300 is 0 in float32) = NaN.
    scale = min(1.0 / settings.temperature, 1e30)
    logits = (logits - logits.amax(dim=-1, keepdim=True)) * scale
    vocab = logits.size(-1)
    if 0 < settings.top_k < vocab:
        kth = torch.topk(logits, settings.top_k, dim=-1).values[..., -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if settings.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # drop a token when the tokens before it already reach p; the first token always stays
        drop_sorted = (cum - torch.softmax(sorted_logits, dim=-1)) >= settings.top_p
        drop_sorted[..., 0] = False
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def choose(logits: torch.Tensor, settings: SamplingSettings, generator: torch.Generator | None,
           probs: torch.Tensor | None = None) -> torch.Tensor:
    """Pick the next token for each row of logits (B, V) -> (B,). ``probs``: softmax(logits), if known."""
    if settings.is_greedy:
        return logits.argmax(dim=-1)
    if settings.temperature == 1.0 and settings.top_k == 0 and settings.top_p == 1.0:
        probs = torch.softmax(logits, dim=-1) if probs is None else probs
    else:
        probs = torch.softmax(filter_logits(logits, settings), dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def make_generator(seed: int | None) -> torch.Generator:
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g


def generate(model: Stepper, prompt_ids: list[int], settings: SamplingSettings, alternatives: int = 0
             ) -> Iterator[Token]:
    """Yield new tokens one at a time, as they are produced (for streaming); with ``alternatives`` > 0 each
    carries the model's that many likeliest tokens at its step (what else it could have written)."""
    if not prompt_ids:
        raise ValueError("generation needs at least one prompt token")
    generator = make_generator(settings.seed)
    logits, state = model.start(prompt_ids)
    for i in range(settings.max_new_tokens):
        logits = logits.float()
        probs = torch.softmax(logits, dim=-1)  # the model's own belief, reported with each token
        token = choose(logits, settings, generator, probs)  # (1,)
        token_id = int(token[0])
        top = ()
        if alternatives:
            best, best_ids = probs[0].topk(min(alternatives, probs.size(-1)))
            top = tuple(zip(best_ids.tolist(), best.tolist()))
        yield Token(token_id, probs[0, token_id].item(), top)
        if i + 1 < settings.max_new_tokens:  # no step for a token nobody will read
            logits, state = model.step(token, state)


def greedy_continuation(model: Stepper, prompt_ids: list[int], max_new_tokens: int) -> list[int]:
    """The most likely continuation of a prompt, token by token."""
    settings = SamplingSettings(max_new_tokens=max_new_tokens, temperature=0.0)
    return [t.id for t in generate(model, prompt_ids, settings)]


def sample(model: Stepper, prompt_ids: list[int], settings: SamplingSettings) -> list[int]:
    return [t.id for t in generate(model, prompt_ids, settings)]


# --------------------------------------------------------------------------- search for conditional models

def searchable_log_probs(logits: torch.Tensor, banned: tuple[int, ...] = (PAD_ID, BOS_ID)) -> torch.Tensor:
    """Log-probabilities for search: ``banned`` tokens, by default <pad> and <s>, are never outputs (training
    never asks for those two, but an undertrained model may still give them mass)."""
    logits = logits.float().clone()
    logits[:, list(banned)] = float("-inf")
    return torch.log_softmax(logits, dim=-1)


class Searchable(Protocol):
    bos_id: int
    eos_id: int

    def begin(self, inputs: Any) -> tuple[Any, Any]: ...

    def step_log_probs(self, tokens: torch.Tensor, state: Any, context: Any) -> tuple[torch.Tensor, Any, torch.Tensor]: ...

    def select_state(self, state: Any, index: torch.Tensor) -> Any: ...

    def select_context(self, context: Any, index: torch.Tensor) -> Any: ...


class Hypothesis(NamedTuple):
    tokens: list[int]  # without <s>; without </s> (``finished`` says whether it was produced)
    score: float  # sum of log-probabilities, </s> included when finished (less ``discourage_repeats``' penalties)
    normalized: float  # the score the n-best list is ranked by (length-normalised)
    attention: torch.Tensor  # (len(tokens) + finished, S): one row per produced token, </s> included
    finished: bool  # False when max_len stopped it before </s>


@dataclass
class Candidate:
    """One entry of an n-best list as a person reads it: the decoded text and its scores."""

    text: str
    score: float  # sum of log-probabilities
    normalized: float  # length-normalised score, the one the n-best list is ranked by


def length_penalty(length: int, alpha: float) -> float:
    """GNMT's ((5 + length) / 6) ** alpha (Wu et al. 2016): 0 = raw log-probability, 1 ~ per-token average.

    Without it, beam search prefers short outputs, since every token can only lower the score.
    """
    return ((5.0 + length) / 6.0) ** alpha


def discourage_repeats(logp: torch.Tensor, history: torch.Tensor, no_repeat_ngram: int = 0,
                       repeat_penalty: float = 0.0) -> torch.Tensor:
    """Lowers, in place, the log-probability of tokens that would repeat what a row has already said.

    logp (R, V); history (R, L), the tokens each row has produced so far. Beam search favours the likeliest
    words, and a caption that has said "at the camera" finds the same words likely again ("looking at a
    camera at the camera"). Two rules, both off at 0:
    - ``no_repeat_ngram`` n: a token that would complete an n-gram already in the row gets -inf (fairseq's
      no_repeat_ngram_size), by one vectorised comparison of every earlier (n-1)-gram with the last one;
    - ``repeat_penalty``: each earlier use of a token costs it that many nats (a frequency penalty), so
      "a" and "the" still come back where they are likely, and a rarer word rarely does.
    The search's scores then include these penalties.
    """
    length = history.size(1)
    if length == 0:
        return logp
    if repeat_penalty:
        uses = torch.zeros_like(logp).scatter_add_(1, history, torch.ones(history.shape, dtype=logp.dtype,
                                                                           device=logp.device))
        logp.sub_(repeat_penalty * uses)
    n = no_repeat_ngram
    if n >= 1 and length >= n:
        windows = history.unfold(1, n, 1)  # (R, L-n+1, n): every n-gram produced so far
        match = (windows[:, :, :-1] == history[:, length - n + 1:].unsqueeze(1)).all(-1)  # starts as the row ends
        rows = torch.arange(history.size(0), device=history.device)[:, None].expand_as(match)
        logp[rows[match], windows[:, :, -1][match]] = float("-inf")
    return logp


def coverage_gap(attention: torch.Tensor, source_mask: torch.Tensor | None = None) -> torch.Tensor:
    """GNMT's coverage penalty (Wu et al. 2016), sum_i log(min(attention position i got, 1)): 0 when every
    source position got a whole unit of attention, below 0 for each one left unread. attention (N, T, S);
    ``source_mask`` (N, S) marks real positions (padding is never read). Returns (N,)."""
    gap = attention.float().sum(1).clamp(1e-3, 1.0).log()
    if source_mask is not None:
        gap = gap.masked_fill(~source_mask, 0.0)
    return gap.sum(-1)


@torch.no_grad()
def beam_search(model: Searchable, inputs: Any, beam_size: int = 5, max_len: int = 100, alpha: float = 1.0,
                n_best: int | None = None, no_repeat_ngram: int = 0, repeat_penalty: float = 0.0,
                coverage: float = 0.0) -> list[list[Hypothesis]]:
    """Batched beam search; for each input, up to ``n_best`` (default ``beam_size``) hypotheses, best first.

    Each step ranks the 2k best continuations of the k live beams of a sentence: those that end in
    </s> within the top k become finished hypotheses, and the k best that do not end go on, so the beam
    keeps its width (as fairseq does). A sentence is done when it has k finished hypotheses; live beams
    still going at ``max_len`` are returned unfinished rather than dropped. ``no_repeat_ngram`` and
    ``repeat_penalty`` discourage saying the same thing twice (``discourage_repeats``). ``coverage`` β makes
    ending cost β x ``coverage_gap`` of the attention so far, so that a translation which has not read part of its
    source rarely stops there (a translator's beam dropped the end of long sentences); 0 for captions, whose
    grid of regions is not there to be read whole. The scores include these penalties.
    """
    if beam_size < 1:
        raise ValueError("beam_size must be >= 1")
    n_best = beam_size if n_best is None else min(n_best, beam_size)
    context, state = model.begin(inputs)
    batch = _batch_size(context)
    k, device = beam_size, _device(context)
    rows = torch.arange(batch, device=device).repeat_interleave(k)  # beam b*k+j reads input b
    context, state = model.select_context(context, rows), model.select_state(state, rows)
    source_mask = getattr(context, "mask", None)  # (B*k, S): real source positions, where the context says
    tokens = torch.full((batch * k,), model.bos_id, dtype=torch.long, device=device)
    # only beam 0 of each input is live at the start, or the first step would pick k copies of one word
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0
    history = torch.empty(batch * k, 0, dtype=torch.long, device=device)
    attn_history: torch.Tensor | None = None
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    for t in range(max_len):
        logp, state, attn = model.step_log_probs(tokens, state, context)  # (B*k, V), (B*k, S)
        discourage_repeats(logp, history, no_repeat_ngram, repeat_penalty)
        V = logp.size(-1)
        attn_history = attn[:, None] if attn_history is None else torch.cat([attn_history, attn[:, None]], 1)
        if coverage:
            logp[:, model.eos_id] += coverage * coverage_gap(attn_history, source_mask)
        cand = (scores[:, :, None] + logp.view(batch, k, V)).view(batch, k * V)
        top_scores, top_ids = cand.topk(min(2 * k, k * V), dim=-1)  # (B, 2k)
        origin = top_ids // V  # which live beam each candidate extends (integer division: beam indices)
        word = top_ids % V
        is_eos = word == model.eos_id
        # finished hypotheses: </s> among the k best candidates of a sentence that is not done
        new_done = is_eos[:, :k] & torch.isfinite(top_scores[:, :k]) & ~done[:, None]
        for b, j in new_done.nonzero().tolist():
            if len(finished[b]) >= k:
                continue
            src = b * k + int(origin[b, j])
            length = t + 1
            finished[b].append(Hypothesis(
                history[src].tolist(), float(top_scores[b, j]), float(top_scores[b, j]) / length_penalty(length, alpha),
                attn_history[src].cpu(), True))
        done |= torch.tensor([len(f) >= k for f in finished], device=device)
        if bool(done.all()):
            break
        # the k best continuations that do not end: sort non-</s> candidates first, keeping their rank order
        rank = torch.arange(top_ids.size(1), device=device)[None, :] + is_eos.long() * top_ids.size(1)
        keep = rank.topk(k, dim=-1, largest=False).indices  # (B, k)
        scores = top_scores.gather(1, keep).masked_fill(done[:, None], float("-inf"))
        scores = scores.masked_fill(word.gather(1, keep) == model.eos_id, float("-inf"))  # fewer than k left
        select = (torch.arange(batch, device=device)[:, None] * k + origin.gather(1, keep)).view(-1)
        tokens = word.gather(1, keep).view(-1)
        history = torch.cat([history[select], tokens[:, None]], dim=1)
        attn_history = attn_history[select]
        state = model.select_state(state, select)
    else:  # max_len reached: live beams are results too (a model that never says </s> still answers)
        for b in range(batch):
            for j in range(k):
                if len(finished[b]) >= k or not torch.isfinite(scores[b, j]):
                    continue
                src = b * k + j
                score = float(scores[b, j])
                finished[b].append(Hypothesis(history[src].tolist(), score, score / length_penalty(max_len, alpha),
                                              attn_history[src, :max_len].cpu(), False))
    return [sorted(f, key=lambda h: -h.normalized)[:n_best] for f in finished]


@torch.no_grad()
def greedy_search(model: Searchable, inputs: Any, max_len: int = 100, no_repeat_ngram: int = 0,
                  repeat_penalty: float = 0.0) -> list[Hypothesis]:
    """The most likely token at every step, for a batch; one hypothesis per input (repeats discouraged as
    ``discourage_repeats`` says)."""
    context, state = model.begin(inputs)
    batch, device = _batch_size(context), _device(context)
    tokens = torch.full((batch,), model.bos_id, dtype=torch.long, device=device)
    outputs, attns = [], []
    score = torch.zeros(batch, device=device)
    alive = torch.ones(batch, dtype=torch.bool, device=device)
    ended_at = torch.full((batch,), max_len, dtype=torch.long)
    for t in range(max_len):
        logp, state, attn = model.step_log_probs(tokens, state, context)
        if (no_repeat_ngram or repeat_penalty) and outputs:
            discourage_repeats(logp, torch.stack(outputs, 1), no_repeat_ngram, repeat_penalty)
        best, tokens = logp.max(dim=-1)
        score += best * alive
        outputs.append(tokens), attns.append(attn)
        ended = alive & (tokens == model.eos_id)
        ended_at[ended.cpu()] = t
        alive &= ~ended
        if not bool(alive.any()):
            break
    out, att = torch.stack(outputs, 1).cpu(), torch.stack(attns, 1).cpu()  # (B, T), (B, T, S)
    results = []
    for b in range(batch):
        n, fin = int(ended_at[b]), bool(ended_at[b] < max_len)
        s = float(score[b])
        results.append(Hypothesis(out[b, :n].tolist(), s, s, att[b, :n + fin], fin))
    return results


MAX_BEAM = 10  # the widest beam the CLIs and the app accept: wider beams cost time and rarely help


def search(model: Searchable, inputs: Any, beam_size: int = 1, max_len: int = 100, alpha: float = 1.0,
           n_best: int | None = None, no_repeat_ngram: int = 0, repeat_penalty: float = 0.0, coverage: float = 0.0
           ) -> list[list[Hypothesis]]:
    """The n-best list of each input, best first: greedy search for ``beam_size`` 1 (one hypothesis; the same
    result as beam search of width 1 without ``coverage``, faster: greedy stays the plain argmax the tutorials
    decode with), else ``beam_search``."""
    if beam_size == 1:
        return [[h] for h in greedy_search(model, inputs, max_len, no_repeat_ngram, repeat_penalty)]
    return beam_search(model, inputs, beam_size=beam_size, max_len=max_len, alpha=alpha, n_best=n_best,
                       no_repeat_ngram=no_repeat_ngram, repeat_penalty=repeat_penalty, coverage=coverage)


def sample_sequences(model: Searchable, context: Any, state: Any, max_len: int, pad_id: int = 0,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample one output per row from the model's own distribution, keeping gradients (for policy-gradient
    training such as self-critical captioning).

    Returns tokens (N, T), </s> included and ``pad_id`` after it; the log-probability of each sampled
    token (N, T); and the mask (N, T) of tokens that count, </s> included, padding not.
    """
    n, device = _batch_size(context), _device(context)
    tokens = torch.full((n,), model.bos_id, dtype=torch.long, device=device)
    alive = torch.ones(n, dtype=torch.bool, device=device)
    outputs, logps, masks = [], [], []
    for _ in range(max_len):
        logp, state, _ = model.step_log_probs(tokens, state, context)
        drawn = torch.multinomial(logp.detach().exp(), 1, generator=generator)[:, 0]
        logps.append(logp.gather(1, drawn[:, None])[:, 0])
        masks.append(alive)
        tokens = drawn.masked_fill(~alive, pad_id)  # an ended row reads padding, which the loss ignores
        outputs.append(tokens)
        alive = alive & (drawn != model.eos_id)
        if not bool(alive.any()):
            break
    mask = torch.stack(masks, 1).float()
    return torch.stack(outputs, 1), torch.stack(logps, 1) * mask, mask


def _first_tensor(tree: Any) -> torch.Tensor:
    if isinstance(tree, torch.Tensor):
        return tree
    if isinstance(tree, (tuple, list)):
        return _first_tensor(tree[0])
    raise TypeError("a search context must be a tensor or a tuple of tensors")


def _batch_size(context: Any) -> int:
    return _first_tensor(context).size(0)


def _device(context: Any) -> torch.device:
    return _first_tensor(context).device
