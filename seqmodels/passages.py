"""Pasted text as the translator reads it: sentences to translate, and emoji, symbols and URLs kept as written.

The translation model learnt from single Tatoeba sentences (99.9% of their English sides are under 101 characters,
every one ends in . ! or ?, and none holds an emoji or a pictograph), so a paragraph makes it loop and an emoji
garbles the sentence around it. ``split_passage`` cuts a paste into ``Piece``s, each one sentence for the model plus
the kept text around it; ``join_passage`` writes the translations back in their places.
``Translator.translate_passage`` uses both; nothing to run here.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace

MAX_SENTENCE_CHARS = 160  # longer sentences (run-on pastes, lists with commas) are translated in parts

# URLs and e-mail addresses; the punctuation that closes the sentence around them is trimmed off afterwards
_ADDRESS = re.compile(r"(?:https?://|www\.)[^\s<>\"]+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+|[0-9#*]\ufe0f?\u20e3",
                      re.IGNORECASE)  # the last branch is a keycap emoji (1️⃣), whose first character is a digit
_ADDRESS_TAIL = ".,;:!?)]}'\"»”’"
# a sentence ends at . ! ? or …, perhaps repeated, perhaps followed by closing quotes or brackets
_END = re.compile(r"[.!?…]+[\"'»”’)\]]*")
_CLOSING = re.compile(r"[.!?…]+[\"'»”’)\]]*$")  # ... when it closes the text
_FINAL = re.compile(r"[\s.!?…]+$")  # a translation's own final punctuation, French spacing included
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,!?;:…])")
# a full stop after these is not a sentence end ("Mr. Smith", "e.g. Paris", "7 a.m. Then")
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "st", "mt", "jr", "sr", "vs", "etc", "e.g", "i.e", "a.m", "p.m",
                  "u.s", "u.k", "no", "fig", "approx", "cf", "vol", "ca", "inc", "ltd"}


# what a question typed without its "?" starts with: "where is the station", "are you hungry", "how's Tom"
_QUESTION_WORDS = {"what", "where", "who", "why", "how", "which", "whose", "whom", "when"}
_AUXILIARIES = {"is", "are", "am", "was", "were", "do", "does", "did", "can", "could", "will", "would", "should",
                "shall", "have", "has", "had", "may", "might", "must", "isn't", "aren't", "wasn't", "weren't", "don't",
                "doesn't", "didn't", "can't", "couldn't", "won't", "wouldn't", "shouldn't", "haven't", "hasn't"}
_SUBJECTS = {"i", "you", "he", "she", "it", "we", "they", "this", "that", "there", "these", "those", "the", "a", "an",
             "my", "your", "his", "her", "our", "their", "its", "anyone", "anybody", "someone", "somebody", "everyone",
             "everybody"}
_PRONOUNS = {"i", "you", "he", "she", "we", "they"}


def closing_mark(sentence: str) -> str:
    """The mark a sentence typed without one should end with: "?" where it opens as a question does, else ".".

    Tatoeba's questions end in "?", and the model reads the mark: "are you hungry." came out as "J'ai faim.",
    "are you hungry?" as "Avez-vous faim ?". On the English sides of the Tatoeba file that end in . or ?, with the
    mark taken off, this says "?" for 92.3% of the questions and is right 98.9% of the times it does. What it misses
    mostly has no question word ("Really", "Got it"); what it takes for a question mostly opens with a clause
    ("What I need is a friend", "Don't you go away")."""
    typed = re.findall(r"[A-Za-z']+", sentence)
    words = [w.lower() for w in typed]
    if not words:
        return "."
    first, contracted = words[0].partition("'")[0], "'" in words[0]  # "how's", "who'll"
    if first in _QUESTION_WORDS:
        if len(words) > 1 and not contracted and (
                (first in ("what", "when", "where", "how") and words[1] in _PRONOUNS)  # "when I was young"
                or (first == "what" and words[1] in ("a", "an"))):  # "what a day"
            return "."
        return "?"
    if len(words) > 1 and words[0] in _AUXILIARIES and (words[1] in _SUBJECTS or typed[1][0].isupper()):  # "is Tom"
        # not "do it now", "have a seat", "do your best": an order
        imperative = words[0] in ("do", "have") and words[1] not in _PRONOUNS | {"there"} and typed[1][0].islower()
        return "." if imperative else "?"
    return "."


def is_kept(ch: str) -> bool:
    """Emoji and other pictographs (Unicode's "other symbol"), with the characters that modify or join them.

    The degree sign is "other symbol" too, but it belongs to the number before it ("30°C"), so the model reads it.
    Currency, maths and % stay in the sentence for the same reason.
    """
    cp = ord(ch)
    return ((unicodedata.category(ch) == "So" and ch != "°")
            or 0x1F3FB <= cp <= 0x1F3FF  # skin tones ("Sk")
            or cp in (0x200D, 0xFE0E, 0xFE0F, 0x20E3)  # zero-width joiner, variation selectors, keycap
            or 0xE0020 <= cp <= 0xE007F)  # the tags of subdivision flags


def kept_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every URL, e-mail address and run of emoji or symbols in ``text``, in order."""
    spans = []
    for m in _ADDRESS.finditer(text):
        end = m.end()
        while end > m.start() + 1 and text[end - 1] in _ADDRESS_TAIL:
            end -= 1
        spans.append((m.start(), end))
    taken = set()
    for s, e in spans:
        taken.update(range(s, e))
    i = 0
    while i < len(text):
        if i not in taken and is_kept(text[i]):
            j = i
            while j < len(text) and j not in taken and is_kept(text[j]):
                j += 1
            spans.append((i, j))
            i = j
        else:
            i += 1
    return sorted(spans)


def _sentence_ends(text: str, spans: list[tuple[int, int]]) -> list[int]:
    """Positions where a sentence ends: after a bare . ! or ? (a full stop that ends no abbreviation), whatever
    case the next word starts in, since people type "I swam. my brother did not" and "how are you? im fine", and read
    as one sentence the model dropped a clause; after … or a closing quote (and the emoji that follow them) only
    when the next word does not start in lower case; at every line break; after an emoji or URL that a capitalised
    word follows."""
    inside = {i for s, e in spans for i in range(s, e)}
    span_at = {s: e for s, e in spans}

    def skip_kept(pos: int) -> int:
        """The end of the emoji and URLs (and the spaces between them) that start at ``pos``, if any."""
        end = pos
        while True:
            k = end
            while k < len(text) and text[k] in " \t":
                k += 1
            if k not in span_at:
                return end
            end = span_at[k]

    def next_word_is_lower(pos: int) -> bool:
        rest = text[pos:].lstrip()
        return rest[:1].islower()

    ends = [m.start() for m in re.finditer(r"\r\n|\r|\n", text)]
    for m in _END.finditer(text):
        if m.start() in inside:
            continue
        after = skip_kept(m.end())
        if after < len(text) and not text[after].isspace():
            continue  # "3.5", "Hi.Bye", "example.com": no space, no sentence end
        run = m.group()
        if next_word_is_lower(after) and (run[-1] not in ".!?" or "…" in run or ".." in run):
            continue  # "Wait... what", "He said "Go." and left"; a bare . ! or ? ends one ("there. my brother")
        if m.group() == ".":
            word = re.search(r"[\w.]*$", text[max(0, m.start() - 12):m.start()]).group().lower()
            start_of_word = m.start() < 2 or text[m.start() - 2].isspace()
            initial = len(word) == 1 and text[m.start() - 1].isupper() and start_of_word
            acronym = re.fullmatch(r"(\w\.)+\w", word) and next_word_is_lower(after)  # "the T.V. on", "I.D. card"
            number_sign = word != "no" or text[after:].lstrip()[:1].isdigit()  # "No. 5", but "I said no. he left"
            if (word in _ABBREVIATIONS and number_sign) or initial or acronym:
                continue  # "Mr.", an initial ("J. K. Rowling"), an acronym, but not "30°C."
        ends.append(after)
    for s, e in spans:
        rest = text[e:]
        if rest[:1] in (" ", "\t") and rest.lstrip(" \t")[:1].isupper() and text[:s].strip():
            ends.append(e)  # "Great party 🎉 See you soon": the emoji closed the sentence
    return sorted(set(ends))


@dataclass(frozen=True)
class Piece:
    """One sentence for the model, or text kept as written, with what surrounds it in the paste.

    The written result is ``before``, the translation (its final punctuation removed when ``replace_end``), then
    ``after``, then ``gap``.
    """

    sentence: str  # what the model reads, ending in . ! or ?; "" when the piece has nothing to translate
    before: str = ""  # kept as written before the translation (emoji at the start, or the whole piece)
    after: str = ""  # kept as written after it: emoji and URLs, then the input's own closing punctuation
    replace_end: bool = False  # the translation's final punctuation gives way to ``after`` (or was never asked for)
    kept: tuple[str, ...] = ()  # the emoji, symbols and URLs of the piece, in order, as written
    moved: tuple[str, ...] = ()  # those of them that stood inside the sentence: they now follow its translation
    part: tuple[int, int] = (1, 1)  # (k, n): part k of a sentence longer than MAX_SENTENCE_CHARS, cut in n parts
    gap: str = ""  # what separated it from the next piece: "", a space or line breaks


def _gap(whitespace: str) -> str:
    lines = whitespace.count("\n") or whitespace.count("\r")
    return "\n" * min(lines, 2) if lines else (" " if whitespace else "")


def _parts(core: str) -> list[str]:
    """``core`` in pieces of at most MAX_SENTENCE_CHARS, cut after a comma, semicolon or colon where one is far
    enough along, else at a space."""
    parts = []
    while len(core) > MAX_SENTENCE_CHARS:
        head = core[:MAX_SENTENCE_CHARS + 1]
        cut = max(head.rfind(", "), head.rfind("; "), head.rfind(": "))
        if cut >= MAX_SENTENCE_CHARS // 3:
            cut += 1
        else:
            cut = head.rfind(" ")
            if cut <= 0:
                cut = MAX_SENTENCE_CHARS
        parts.append(core[:cut].strip())
        core = core[cut:].strip()
    return parts + [core]


def _pieces_of(segment: str) -> list[Piece]:
    """The pieces of one sentence of the paste (several when it is longer than MAX_SENTENCE_CHARS)."""
    spans = kept_spans(segment)
    kept = tuple(segment[s:e] for s, e in spans)
    in_span = {i for s, e in spans for i in range(s, e)}
    if not any(ch.isalnum() for i, ch in enumerate(segment) if i not in in_span):
        return [Piece("", before=segment, kept=kept)]  # "...", "---", "😀 🎉": nothing for the model
    final, body = "", segment  # the closing punctuation, when it comes last
    m = _CLOSING.search(segment)
    if m and m.start() not in in_span:
        final, body = m.group(), segment[:m.start()]
    lead = 0  # the kept spans at the start of the body, and the spaces between them
    for s, e in spans:
        if s >= len(body) or body[lead:s].strip():
            break
        lead = e
    trail = len(body)  # those at its end
    for s, e in reversed(spans):
        if s < lead or body[e:trail].strip():
            break
        trail = s
    before, tail = body[:lead].strip(), body[trail:].strip()
    moved, words, pos = [], [], lead
    for s, e in spans:
        if lead <= s and e <= trail:
            moved.append(segment[s:e])
            words.append(body[pos:s])
            pos = e
    words.append(body[pos:trail])
    core = _SPACE_BEFORE_PUNCT.sub(r"\1", " ".join(" ".join(words).split()))
    after = " ".join([*moved, tail]).strip()

    parts = _parts(core)
    pieces = []
    for k, part in enumerate(parts, 1):
        first, last = k == 1, k == len(parts)
        common = dict(before=before if first else "", kept=kept if first else (), moved=tuple(moved) if first else (),
                      part=(k, len(parts)), gap="" if last else " ")
        if not last:  # the model reads a part as a sentence; its comma comes back after the translation
            stem = part.rstrip(",;:")
            closed = bool(_CLOSING.search(stem))
            pieces.append(Piece(stem if closed else stem + ".", after=part[len(stem):], replace_end=not closed,
                                **common))
        elif _CLOSING.search(part):  # it closed itself before the emoji that follow ("Great party! 🎉")
            pieces.append(Piece(part, after=after + final, **common))
        elif after or not final:
            # emoji came last, or no punctuation at all: the model still gets an end (without one it rambles),
            # and its translation's end gives way to what the input had
            end = final.rstrip("\"'»”’)]") or closing_mark(part)
            pieces.append(Piece(part + end, after=after + final, replace_end=True, **common))
        else:
            pieces.append(Piece(part + final, **common))
    return pieces


def split_passage(text: str) -> list[Piece]:
    """The pieces of ``text`` in reading order: every sentence once, and every emoji, symbol and URL once."""
    bounds = [0, *_sentence_ends(text, kept_spans(text)), len(text)]
    pieces: list[Piece] = []
    for start, stop in zip(bounds, bounds[1:]):
        segment = text[start:stop]
        space = segment[:len(segment) - len(segment.lstrip())]
        if pieces and space:  # the whitespace between two sentences decides what joins their translations
            pieces[-1] = replace(pieces[-1], gap=_gap(pieces[-1].gap + space))
        if segment.strip():
            pieces.extend(_pieces_of(segment.strip()))
    return pieces


def join_passage(pieces: list[Piece], translations: list[str]) -> str:
    """The written result: one translation for each piece that has a sentence, in order, with the kept text around."""
    todo = iter(translations)
    out = []
    for piece in pieces:
        words = [piece.before]
        if piece.sentence:
            translation = next(todo)
            if piece.replace_end:
                translation = _FINAL.sub("", translation)
            if piece.after[:1] in (",", ";", ":") or not piece.after:
                words.append(translation + piece.after)
            else:
                words.extend([translation, piece.after])
        out.append(" ".join(w for w in words if w) + piece.gap)
    return "".join(out).strip()


def cut_passage(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else its longest start that ends a sentence (or, when that would
    keep less than half, a word)."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    # the ends are found with a few characters past the limit in view: whether "No." ends a sentence depends on the
    # word after it
    seen = text[:limit + 40]
    ends = [e for e in _sentence_ends(seen, kept_spans(seen)) if limit // 2 <= e <= limit]
    if ends:
        return head[:ends[-1]].rstrip()
    space = head.rfind(" ")
    return (head[:space] if space > 0 else head).rstrip()
