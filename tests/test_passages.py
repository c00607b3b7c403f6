"""Pasted text split for the translator: every sentence once and in order, emoji, symbols and URLs kept as written."""
import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqmodels.passages import MAX_SENTENCE_CHARS, closing_mark, cut_passage, join_passage, split_passage

# CI replays a fixed set of examples (a red build must mean a regression); runs elsewhere explore anew
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                derandomize=os.environ.get("CI") == "true")

# sentences with the traps of a real paste: abbreviations, initials, decimals, ellipses, quotes, an address
SENTENCES = ["I am cold.", "Where is the station?", "Mr. Smith lives at No. 5.", "J. K. Rowling wrote it!",
             "It costs 3.5 euros.", "Wait... what did you say?", 'He said "Go."', "It was 30°C at 7 a.m. today.",
             "Do you like it, Tom?", "Is it 9.30 p.m. already?", "Stop!", "We are (very) late."]


def identity(pieces) -> str:
    """The passage put back together with each sentence as its own translation."""
    return join_passage(pieces, [p.sentence for p in pieces if p.sentence])


@FAST
@given(st.lists(st.tuples(st.sampled_from(SENTENCES), st.sampled_from([" ", "\n", "\n\n"])), min_size=1, max_size=12))
def test_a_long_paste_is_split_into_its_sentences_each_once_and_in_order(chosen):
    text = "".join(s + gap for s, gap in chosen).strip()
    pieces = split_passage(text)
    assert [p.sentence for p in pieces] == [s for s, _ in chosen]
    assert identity(pieces) == text  # gaps and line breaks come back as they were


@FAST
@given(st.text(max_size=120))
def test_any_text_comes_back_with_every_character_once(text):
    def visible(t):
        return Counter(ch for ch in t if not ch.isspace())
    assert visible(identity(split_passage(text))) == visible(text)


@pytest.mark.parametrize("text, sentences, kept", [
    ("We are ready 🎉", ["We are ready."], ["🎉"]),  # the model still gets an end: without one it rambles
    ("😀 We are ready. 🎉", ["We are ready."], ["😀", "🎉"]),
    ("Great party! 🎉 See you soon.", ["Great party!", "See you soon."], ["🎉"]),  # the emoji stays with its sentence
    ("Thanks 🙏 I will come.", ["Thanks.", "I will come."], ["🙏"]),  # an emoji can end a sentence
    ("👍🏽 Fine. 👨‍👩‍👧 🇫🇷 1️⃣", ["Fine."], ["👍🏽", "👨‍👩‍👧", "🇫🇷", "1️⃣"]),  # skin tone, joiner, flag, keycap
    ("My email is tom@example.com.", ["My email is."], ["tom@example.com"]),
    ("Go to www.example.com. Then call me!", ["Go to.", "Then call me!"], ["www.example.com"]),
    ("It is 30°C. ©™ Fine!", ["It is 30°C.", "Fine!"], ["©™"]),  # the degree sign is the number's
])
def test_emoji_symbols_and_urls_stay_out_of_the_sentences_and_come_back_where_they_stood(text, sentences, kept):
    pieces = split_passage(text)
    assert [p.sentence for p in pieces if p.sentence] == sentences
    assert [k for p in pieces for k in p.kept] == kept
    assert identity(pieces) == text


@pytest.mark.parametrize("text, sentences", [
    ("I learned to swim there. my brother was afraid.", ["I learned to swim there.", "my brother was afraid."]),
    ("It was 7 a.m. today. then we left.", ["It was 7 a.m. today.", "then we left."]),
    ("Wait... what did you say? fine.", ["Wait... what did you say?", "fine."]),  # after ... lower case goes on
    ("hi. how are you? im fine! thanks", ["hi.", "how are you?", "im fine!", "thanks."]),
    ('"What?" he asked.', ['"What?" he asked.']),
    ('He said "Go." and left.', ['He said "Go." and left.']),
    ("See e.g. the one cf. the other.", ["See e.g. the one cf. the other."]),
    ("I said no. he left. It is No. 5.", ["I said no.", "he left.", "It is No. 5."]),
    ("This is my I.D. card. We watched T.V. Then we slept.", ["This is my I.D. card.", "We watched T.V.",
                                                             "Then we slept."]),
])
def test_a_bare_stop_or_mark_before_a_lower_case_word_ends_a_sentence_unless_it_ends_an_abbreviation(text, sentences):
    assert [p.sentence for p in split_passage(text)] == sentences


def test_an_emoji_inside_a_sentence_follows_its_translation_and_is_said_to_move():
    pieces = split_passage("I love 🍕 so much.")
    assert [p.sentence for p in pieces] == ["I love so much."] and pieces[0].moved == ("🍕",)
    assert join_passage(pieces, ["J'adore tellement."]) == "J'adore tellement 🍕."


def test_the_translations_end_gives_way_to_the_inputs():
    pieces = split_passage("We are ready 🎉!")
    assert [p.sentence for p in pieces] == ["We are ready!"]
    assert join_passage(pieces, ["Nous sommes prêts !"]) == "Nous sommes prêts 🎉!"
    pieces = split_passage("We are ready")  # no end in the input: none in the output either
    assert join_passage(pieces, ["Nous sommes prêts."]) == "Nous sommes prêts"


@pytest.mark.parametrize("typed, mark", [
    ("where is the station", "?"), ("are you hungry", "?"), ("how's Tom", "?"), ("is Tom OK", "?"),
    ("do you like it", "?"), ("why", "?"), ("I am cold", "."), ("do it now", "."), ("have a seat", "."),
    ("when I was young I lived there", "."), ("what a day", "."), ("Tom is here", "."), ("", ".")])
def test_a_sentence_typed_without_an_end_gets_a_question_mark_where_it_opens_as_a_question(typed, mark):
    assert closing_mark(typed) == mark
    if typed:
        assert [p.sentence for p in split_passage(typed)] == [typed + mark]
        assert join_passage(split_passage(typed), ["Réponse ?"]) == "Réponse"  # still no end in the output


def test_text_without_letters_is_kept_as_written_and_asks_nothing_of_the_model():
    pieces = split_passage("?!... --- 😀🎉")
    assert not any(p.sentence for p in pieces) and identity(pieces) == "?!... --- 😀🎉"


def test_a_sentence_longer_than_the_limit_is_cut_after_a_comma_and_its_commas_come_back():
    clause = "the old man who lived by the sea told the children a story"
    text = ", ".join([clause] * 5) + "."
    pieces = split_passage(text)
    assert len(pieces) > 1 and all(len(p.sentence) <= MAX_SENTENCE_CHARS + 1 for p in pieces)
    assert [p.part for p in pieces] == [(k, len(pieces)) for k in range(1, len(pieces) + 1)]
    assert all(p.sentence.endswith(".") for p in pieces)  # each part reads as a sentence
    assert identity(pieces) == text


def test_a_cut_paste_ends_at_a_sentence_end_within_the_limit():
    sentences = SENTENCES * 10
    text = " ".join(sentences)
    cut = cut_passage(text, 300)
    assert 150 <= len(cut) <= 300 and text.startswith(cut)
    kept = [p.sentence for p in split_passage(cut)]
    assert kept == sentences[:len(kept)]  # whole sentences only
    assert cut_passage("Short.", 300) == "Short."
    assert cut_passage("word " * 100, 50) == ("word " * 10).strip()  # no sentence end near: cut between words
