"""Translate sentences with a seq2seq checkpoint: input checks, batching, search, and readable results.

The evaluation command and the speed bench call ``Translator.translate`` (a batch of sentences); the CLI
(`python -m train.translate translate`) and the Translation tab call ``Translator.translate_passage`` (any pasted
text: split into sentences, translated in one batch, joined), so they check input the same way and decode the same way.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .decoding import MAX_BEAM, Candidate, Hypothesis, search  # MAX_BEAM: the one limit, shared with captioning
from .int8 import int8_copy
from .passages import MAX_SENTENCE_CHARS, closing_mark, cut_passage, join_passage, split_passage
from .tokenizers import EOS_ID, SPECIALS, UNK_ID, normalize, source_and_target

# the one input limit, for a passage as for a sentence: longer input is cut (at a sentence end where it can be) and
# the caller is told. At beam 10 the costliest passage, 71 short sentences, took 1.3 s here while a training run held
# both cores (bench/worst_case.py); 2,000 characters took twice that
MAX_SOURCE_CHARS = 1000
EMPTY_INPUT = "Type a sentence to translate."  # any pair of languages: the app's box says which it reads
# the coverage penalty of beam search (decoding.beam_search): without it the shipped model's beam ended long
# sentences early, leaving their last clauses out (for validation sources of 10 words or more, 7.6% fewer words
# than the references; of 15 or more, 17% fewer). Chosen on the validation split: README, "Translation"
COVERAGE = 0.2


class TranslationError(ValueError):
    """Input that cannot be translated; the message says why, in words a user can act on."""



def _from_capitals(text: str, cost: Callable[[str], tuple] | None = None) -> str:
    """A text written all in capitals, in sentence case ("WHERE IS THE BATHROOM?" -> "Where is the bathroom?"); any
    other text as it is. Tatoeba's sentences are written in ordinary case, so capitals read as rare pieces: the
    model turned that question into "Est-ce que quelqu'un a-t-il que j'étais à l'extérieur de terre ?", and its
    sentence case into "Où est la salle de bain ?".

    A word or two in capitals may be an acronym ("OK", "TV"): it changes only where ``cost`` (what the model's
    tokenizer makes of a text: fewer is better) says sentence case reads better ("HELLO" became "L'amour n'a pas
    l'intention de l'école", "Hello" becomes "Salut")."""
    cased = [c for c in text if c.isupper() or c.islower()]
    if not cased or any(c.islower() for c in cased):
        return text
    lowered = re.sub(r"\bi\b", "I", text.lower())  # the pronoun
    lowered = re.sub(r"(^|[.!?]\s+)([^\W\d_])", lambda m: m.group(1) + m.group(2).upper(), lowered)
    if len(cased) >= 4 and len(text.split()) >= 2:
        return lowered
    return lowered if cost is not None and cost(lowered) < cost(text) else text


def _as_a_sentence(text: str) -> str:
    """``text`` with a capital first letter, a capital "I" and a full stop at the end where it has none, as every
    sentence of Tatoeba has: without them the model read "hello" as "Ne fut bonjoure pas", "Hello" as "Il
    s'observatif de l'ob" and "i love you" as "C'est vous qui vous aime"; with them, "Salut." and "Je t'aime."."""
    text = re.sub(r"\bi\b", "I", text)
    text = re.sub(r"^[^\W\d_]", lambda m: m.group(0).upper(), text)
    return text + closing_mark(text) if text[-1].isalnum() else text


@dataclass
class Translation:
    source: str  # the text actually translated (normalised, perhaps cut)
    text: str  # the best translation
    candidates: list[Candidate]  # the n-best list, best first
    source_pieces: list[str]  # one label per source token: the attention map's columns
    target_pieces: list[str]  # one label per produced token, </s> included: its rows
    attention: torch.Tensor  # (len(target_pieces), len(source_pieces)); each row sums to 1
    notes: list[str] = field(default_factory=list)  # what was changed in the input, or went wrong
    # characters it never saw in training that the translation lacks (translate_passage says so, once a paste)
    lost: list[str] = field(default_factory=list)


@dataclass
class PassageTranslation:
    source: str  # the text read: the input, cut at MAX_SOURCE_CHARS when it was longer
    text: str  # the translation, with the emoji, symbols and URLs of the input kept where they stood
    sentences: list[Translation]  # one per sentence the model read, in reading order
    notes: list[str] = field(default_factory=list)  # what was cut, split, kept, moved or unseen


_READ_AS = "; it read "


def _quoted(text: str) -> str:
    """'"Hello."' ends a note as it is; '"Hello"' takes a full stop, so no note ends in '."'."""
    return f'"{text}"' + ("" if text.rstrip()[-1:] in (".", "!", "?", "…") else ".")


def _reading_note(why: str, text: str) -> str:
    """A note on how the input was read: why, then 'it read "Hello."'."""
    return why + _READ_AS + _quoted(text)


def _sentences(numbers: list[int]) -> str:
    """'sentence 3', 'sentences 1, 2 and 4' or, past six, '9 sentences'."""
    if len(numbers) == 1:
        return f"sentence {numbers[0]}"
    if len(numbers) <= 6:
        return f"sentences {', '.join(map(str, numbers[:-1]))} and {numbers[-1]}"
    return f"{len(numbers)} sentences"


def sentence_notes(translations: list["Translation"]) -> list[str]:
    """The notes of a paste's sentences, numbered; a note that several of them share is said once (seven lower-case
    sentences gave seven copies of one explanation), and a shared reason to read them differently lists each reading."""
    if len(translations) == 1:
        return list(translations[0].notes)
    readings: dict[str, list[tuple[int, str]]] = {}
    same: dict[str, list[int]] = {}
    for i, t in enumerate(translations, 1):
        for note in t.notes:
            why, found, read = note.partition(_READ_AS)
            if found:
                readings.setdefault(why, []).append((i, read[1:read.rindex('"')]))  # inside the quotes
            else:
                same.setdefault(note, []).append(i)
    notes = []
    for why, items in readings.items():
        if len(items) == 1:
            notes.append(f"Sentence {items[0][0]}: {_reading_note(why, items[0][1])}")
            continue
        shown = [f'"{read}"' for _, read in items[:3]]
        if len(items) > 3:
            listed = ", ".join(shown) + f" and {len(items) - 3} more."
        else:
            listed = ", ".join(shown[:-1]) + " and " + _quoted(items[-1][1])
        notes.append(f"{_sentences([i for i, _ in items]).capitalize()}: {why}; they were read as {listed}")
    return notes + [f"{_sentences(numbers).capitalize()}: {note}" for note, numbers in same.items()]


def _listed(items) -> str:
    """Characters and emoji side by side ('我 爱 你'); words and addresses quoted, with commas ('"zebra" and
    "giraffe"': a word model's unknown words, listed with spaces, read as one phrase)."""
    items = list(dict.fromkeys(items))
    shown = items[:10]
    if any(len(item) > 1 and any(ch.isalpha() for ch in item) for item in shown):
        shown = [f'"{item}"' for item in shown]
        listed = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + (", " if len(items) > 10 else " and ") + shown[-1]
    else:
        listed = " ".join(shown)
    return listed + (" …" if len(items) > 10 else "")


def lost_note(lost: list[str], sentences: list[int] | None = None, unk: bool = False) -> str:
    """What to say of characters (or a word model's words) the model never saw in training that are missing from
    the translation (of the numbered ``sentences`` of a paste); ``unk``: the translation writes <unk>, which the
    note must name (it said "missing" beside an <unk> it did not explain)."""
    if not sentences:
        where = "the translation"
    else:
        where = f"the translation{'s' if len(sentences) > 1 else ''} of {_sentences(sentences)}"
    them = "it is" if len(set(lost)) == 1 else "they are"
    # "missing" alone, beside the <unk> written in its place, read as wrong to a newcomer
    writes = "write" if sentences and len(sentences) > 1 else "writes"
    unk_note = f", which {writes} <unk> (a word outside the model's vocabulary) instead" if unk else ""
    return f"The model never saw {_listed(lost)} in training: {them} missing from {where}{unk_note}."


def _has_content(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def _known_letters(text: str, unknown: list[str]) -> bool:
    """False when ``text`` has letters and all of them are in the ``unknown`` characters or words (digits alone, which
    the model may copy, count as known)."""
    if not any(ch.isalpha() for ch in text):
        return True
    for item in unknown:
        text = text.replace(item, " ")
    return any(ch.isalpha() for ch in text)


def _clean(text: str) -> str:
    """A decoded translation on one line: byte pieces can spell control characters and line breaks."""
    return " ".join("".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text).split())


class Translator:
    """``quantize``: decode with an int8 copy of the model (``int8_copy``), as the app does."""

    def __init__(self, model, tokenizer, quantize: bool = False):
        self.model = (int8_copy(model) if quantize else model).eval()
        self.source_tok, self.target_tok = source_and_target(tokenizer)

    def _cost(self, text: str) -> tuple[int, int]:
        """(characters or words the model never saw, pieces): how hard ``text`` is for it to read."""
        enc = self.source_tok.encode(text)
        return len(enc.unknown), len(enc.ids)

    def prepare(self, text: str) -> tuple[str, list[int], list[str], list[str]]:
        """Normalise and check one input: (text, token ids, notes, characters the model never saw) or
        TranslationError."""
        if not isinstance(text, str):
            raise TranslationError("the input must be text")
        text = normalize(text)  # NFKC, as in training: full-width letters, ligatures, odd spaces
        if not text:
            raise TranslationError(EMPTY_INPUT)
        if not _has_content(text):
            raise TranslationError("The input has no letters or digits, so there is nothing to translate.")
        notes = []
        lowered = _from_capitals(text, self._cost)
        sentence = _as_a_sentence(lowered)  # "HELLO" read as "Hello" still came out as "Il s'observatif de l'obser"
        if lowered != text:
            notes.append(_reading_note("The input is written in capitals, which the model rarely saw", sentence))
        elif sentence != text:
            notes.append(_reading_note("The model learnt from sentences that start with a capital and end with "
                                       "punctuation", sentence))
        text = sentence
        if len(text) > MAX_SOURCE_CHARS:
            cut = text[:MAX_SOURCE_CHARS]
            cut = cut[:cut.rfind(" ")] if " " in cut else cut
            notes.append(f"The input was {len(text):,} characters long; only the first {len(cut):,} were translated "
                         f"(the limit is {MAX_SOURCE_CHARS:,}).")
            text = cut
        enc = self.source_tok.encode(text)
        if not enc.ids:
            raise TranslationError("Nothing in the input could be read by the model.")
        return text, enc.ids, notes, list(dict.fromkeys(enc.unknown))

    @torch.no_grad()
    def translate(self, texts: list[str], beam_size: int = 5, alpha: float = 1.0, n_best: int = 5,
                  max_len: int | None = None, coverage: float = COVERAGE) -> list[Translation]:
        """Translate a batch; each text is checked first (TranslationError names the bad one)."""
        if not 1 <= beam_size <= MAX_BEAM:
            raise TranslationError(f"beam size must be between 1 and {MAX_BEAM}")
        prepared = [self.prepare(t) for t in texts]
        if not prepared:
            return []
        sources = [ids for _, ids, _, _ in prepared]
        # a translation rarely has more than twice the source's tokens; the cap stops a model that loops
        limit = max_len or min(256, 2 * max(len(s) for s in sources) + 10)
        nbests = search(self.model, sources, beam_size=beam_size, max_len=limit, alpha=alpha, n_best=n_best,
                        coverage=coverage)
        results = []
        for (text, ids, notes, unseen), hyps in zip(prepared, nbests):
            best: Hypothesis = hyps[0]
            produced = best.tokens + ([EOS_ID] if best.finished else [])
            french = _clean(self.target_tok.decode(best.tokens))
            # an unseen character reaches the model as bytes, which it may copy (a digit often is): name only
            # those the translation lacks
            lost = [ch for ch in unseen if ch not in french]
            # numbers the French lacks, not for unseen digits (named above): "3 cats and 12 dogs" lost its 12 unsaid
            said = re.findall(r"\d+", french)
            dropped = [n for n in dict.fromkeys(re.findall(r"\d+", text))
                       if n not in said and n not in unseen and not set(n) <= set(unseen)]
            if dropped:
                # "as digits": a translation may spell a number out ("trois"), which this does not read
                many = len(dropped) > 1
                notes = notes + [f"The number{'s' if many else ''} {', '.join(dropped)} {'are' if many else 'is'} "
                                 "missing from the translation (as digits)."]
            if not best.finished:
                notes = notes + [f"The translation was cut at {limit} tokens before the model ended it."]
            results.append(Translation(
                source=text, text=french,
                candidates=[Candidate(_clean(self.target_tok.decode(h.tokens)), h.score, h.normalized) for h in hyps],
                source_pieces=self.source_tok.pieces(ids), target_pieces=self.target_tok.pieces(produced),
                attention=best.attention[:, :len(ids)].float(), notes=notes, lost=lost,
            ))
        return results

    def translate_many(self, sources: list[str], beam_size: int = 5, alpha: float = 1.0,
                       batch_size: int = 64, coverage: float = COVERAGE) -> list[str]:
        """The best translation of each sentence, for evaluation: length-sorted batches (little padding), output in
        input order; a sentence the model cannot read (empty, say) gets "" rather than failing its batch."""
        settings = dict(beam_size=beam_size, alpha=alpha, n_best=1, coverage=coverage)
        order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
        out: list[str] = [""] * len(sources)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            texts = [sources[i] for i in chunk]
            try:
                results = self.translate(texts, **settings)
            except TranslationError:  # a bad line among good ones: translate one by one
                results = []
                for t in texts:
                    try:
                        results.append(self.translate([t], **settings)[0])
                    except TranslationError:
                        results.append(None)
            for i, r in zip(chunk, results):
                out[i] = r.text if r is not None else ""
        return out

    def translate_passage(self, text: str, beam_size: int = 5, alpha: float = 1.0, n_best: int = 5,
                          coverage: float = COVERAGE) -> PassageTranslation:
        """Translate any pasted text: one sentence at a time (in one batch), emoji, symbols and URLs kept as written.

        The model learnt from single sentences, so a paragraph read whole makes it loop; ``seqmodels.passages``
        says how the text is split and put back together.
        """
        if not isinstance(text, str):
            raise TranslationError("the input must be text")
        notes = []
        if len(text) > MAX_SOURCE_CHARS:
            cut = cut_passage(text, MAX_SOURCE_CHARS)
            notes.append(f"The text was {len(text):,} characters long; the first {len(cut):,} were translated, "
                         f"up to the end of a sentence where one was near (the limit is {MAX_SOURCE_CHARS:,}).")
            text = cut
        if not text.strip():
            raise TranslationError(EMPTY_INPUT)
        pieces = split_passage(text)
        read = [p for p in pieces if p.sentence]
        if not read:
            raise TranslationError("The input has no letters or digits, so there is nothing to translate.")
        prepared = [self.prepare(p.sentence) for p in read]  # as the model will read them: "HELLO" as "Hello."
        unknown = [ch for _, _, _, unseen in prepared for ch in unseen]
        if not any(_known_letters(text, unknown) for text, *_ in prepared):  # letters, and all unknown
            # a newcomer's 我爱你 came back as a fluent French sentence about something else, with one small note
            # "letters" misnamed a word-level model's gap (it knows words, and "asdkjh" is made of letters it has)
            raise TranslationError(f"The model never saw {_listed(unknown)} in training, and nothing else in the text is "
                                   "English it knows: it learned from English sentences, so it has nothing to translate.")
        sentences = self.translate([p.sentence for p in read], beam_size=beam_size, alpha=alpha, n_best=n_best,
                                   coverage=coverage)
        kept = [k for p in pieces for k in p.kept]
        if kept:
            notes.append(f"Kept as written, not translated: {_listed(kept)} (the model never saw emoji, symbols "
                         "or web addresses).")
        moved = [k for p in pieces for k in p.moved]
        if moved:
            notes.append(f"{_listed(moved)} stood inside a sentence; {'it follows' if len(moved) == 1 else 'they follow'} "
                         "that sentence's translation.")
        long = sum(p.part[0] == 1 < p.part[1] for p in read)  # first parts: one per long sentence
        if long:
            notes.append(f"{long} sentence{'s' if long > 1 else ''} longer than {MAX_SENTENCE_CHARS} characters "
                         f"{'were' if long > 1 else 'was'} translated in parts, cut after a comma or between words.")
        notes.extend(sentence_notes(sentences))
        which = [i for i, s in enumerate(sentences, 1) if s.lost]
        unk = [i for i, s in enumerate(sentences, 1) if SPECIALS[UNK_ID] in s.text]
        if which:  # one note for the whole paste, not one a sentence
            notes.append(lost_note([ch for s in sentences for ch in s.lost], which if len(sentences) > 1 else None,
                                   unk=bool(set(unk) & set(which))))
        if unk and not set(unk) & set(which):  # a word model writes <unk> for known English too ("Goodbye!")
            notes.append(f"{SPECIALS[UNK_ID]} stands for a word outside the model's vocabulary.")
        return PassageTranslation(text, join_passage(pieces, [s.text for s in sentences]), sentences, notes)
