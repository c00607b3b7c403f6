"""The Translation tab's handler, called as Gradio calls it."""
import gradio as gr
import plotly.graph_objects as go
import pytest

from conftest import TINY_PAIRS
from demos import translate as tab
from seqmodels import Seq2Seq, Seq2SeqConfig, SentencePieceTokenizer, Translator
from seqmodels.translator import MAX_SOURCE_CHARS


@pytest.fixture(scope="module")
def models():
    import torch
    tok = SentencePieceTokenizer.train([s for p in TINY_PAIRS for s in p], vocab_size=300)
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(src_vocab_size=tok.vocab_size, tgt_vocab_size=tok.vocab_size, embedding_dim=16,
                                  hidden_size=16, encoder_layers=1, dropout=0.0))
    return {"tiny": tab.TranslationModel("tiny", None, Translator(model, tok), {})}


def test_handler_returns_text_an_n_best_list_and_an_attention_figure_the_browser_draws(models):
    french, rows, fig, notes = tab.translate("We are ready.", 4, "tiny", models=models)
    assert isinstance(french, str) and isinstance(fig, go.Figure)
    assert len(rows) == 4 and [r[:2] for r in rows] == [[1, 1], [1, 2], [1, 3], [1, 4]]
    assert [float(r[3]) for r in rows] == sorted((float(r[3]) for r in rows), reverse=True)
    assert "beam 4" in notes and " ms" in notes and "1 sentence ·" in notes


def test_the_attention_map_has_one_row_per_output_subword_and_one_column_per_source_subword(models):
    result = models["tiny"].translator.translate(["You are late."], beam_size=3)[0]
    assert result.attention.shape == (len(result.target_pieces), len(result.source_pieces))
    fig = tab.attention_figure([result])
    (heatmap,) = fig.data
    assert heatmap.z.shape == result.attention.shape and not fig.layout.updatemenus
    assert len(fig.layout.xaxis.ticktext) == len(result.source_pieces)
    assert len(fig.layout.yaxis.ticktext) == len(result.target_pieces)


def hand_made(source_pieces, target_pieces):
    import torch
    from seqmodels.translator import Translation
    attention = torch.softmax(torch.randn(len(target_pieces), len(source_pieces)), -1)
    return Translation("I 😀.", "Je.", [], source_pieces, target_pieces, attention)


def test_hovering_a_cell_names_its_french_and_english_subwords_and_the_weight():
    (heatmap,) = tab.attention_figure([hand_made(["▁I", "▁am", "."], ["▁Je", "▁suis", "."])]).data
    assert heatmap.text[1][0] == "▁suis ← ▁I" and heatmap.text[0][1] == "▁Je ← ▁am"
    assert "%{text}" in heatmap.hovertemplate and "%{z:.2f}" in heatmap.hovertemplate


def test_a_word_models_map_names_its_words_without_the_subword_start_mark():
    fig = tab.attention_figure([hand_made(["▁Let's", "▁go", "!"], ["▁Allons-y", "!"])], unit="words")
    assert list(fig.layout.xaxis.ticktext) == ["Let's", "go", "!"]
    assert list(fig.layout.yaxis.ticktext) == ["Allons-y", "!"]
    assert fig.data[0].text[0][1] == "Allons-y ← go"


def test_end_and_byte_pieces_are_shown_as_written_not_read_as_html_tags():
    # Plotly's labels are HTML-like: unescaped, "</s>" vanished and pushed the plot 400 px off its left edge
    fig = tab.attention_figure([hand_made(["▁I", "<0xF0>"], ["▁Je", "</s>"])])
    assert list(fig.layout.xaxis.ticktext) == ["▁I", "&lt;0xF0&gt;"]
    assert list(fig.layout.yaxis.ticktext) == ["▁Je", "&lt;/s&gt;"]
    assert fig.data[0].text[1][1] == "&lt;/s&gt; ← &lt;0xF0&gt;"


def test_a_paste_of_several_sentences_is_translated_one_by_one_with_a_map_and_an_n_best_list_each(models):
    french, rows, fig, notes = tab.translate("We are ready. You are late!\nI am cold.", 2, "tiny", models=models)
    assert sorted({r[0] for r in rows}) == [1, 2, 3] and "3 sentences" in notes
    assert len(fig.data) == 3 and [trace.visible for trace in fig.data] == [True, False, False]
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["1 of 3: We are ready.", "2 of 3: You are late!", "3 of 3: I am cold."]
    assert buttons[2].args[0]["visible"] == [False, False, True]
    assert french.count("\n") == 1  # the line break of the paste is kept


def test_the_attention_map_of_a_long_sentence_stays_within_its_height(models):
    result = models["tiny"].translator.translate([" ".join(["We are ready and you are late"] * 6) + "."],
                                                 beam_size=1)[0]
    fig = tab.attention_figure([result])
    assert len(result.source_pieces) > 30 and fig.layout.height <= tab.MAX_PLOT_HEIGHT


@pytest.mark.parametrize("text, message", [
    ("", "Type a sentence"),
    ("   \n ", "Type a sentence"),
    ("?!... ---", "no letters or digits"),
    ("😀 🎉 https://example.com", "no letters or digits"),
    (None, "Type a sentence"),
])
def test_bad_input_gets_a_clear_message(models, text, message):
    with pytest.raises(gr.Error, match=message):
        tab.translate(text, 5, "tiny", models=models)


def test_a_paste_longer_than_the_limit_is_cut_at_a_sentence_end_and_the_note_says_so(models):
    text = "We are ready to go. " * 60  # 1,200 characters
    french, rows, _, notes = tab.translate(text, 2, "tiny", models=models)
    assert f"The text was {len(text):,} characters long" in notes and f"the limit is {MAX_SOURCE_CHARS:,}" in notes
    read = int(notes.split("the first ")[1].split(" were")[0].replace(",", ""))
    assert MAX_SOURCE_CHARS // 2 <= read <= MAX_SOURCE_CHARS and read % 20 == 19  # whole sentences only
    assert max(r[0] for r in rows) == (read + 1) // 20


def test_the_box_states_the_limit_the_handler_applies_and_never_cuts_a_paste_itself(models):
    with gr.Blocks() as demo:
        tab.build_tab(models)
    box = next(c for c in demo.blocks.values() if isinstance(c, gr.Textbox) and c.label == "English")
    assert box.max_length is None  # the browser would cut a long paste silently
    assert f"{MAX_SOURCE_CHARS:,} characters" in box.info


def test_emoji_survive_a_round_trip_and_never_reach_the_model(models):
    french, _, fig, notes = tab.translate("😀 We are ready. 👍🏽", 2, "tiny", models=models)
    assert french.startswith("😀 ") and french.endswith(" 👍🏽")
    result = models["tiny"].translator.translate_passage("😀 We are ready. 👍🏽", beam_size=2)
    assert result.sentences[0].source == "We are ready." and not any(p.startswith("<0x") for p in
                                                                     result.sentences[0].source_pieces)
    assert "Kept as written, not translated: 😀 👍🏽" in notes and "never saw 😀" not in notes


def test_a_text_whose_letters_the_model_never_saw_is_refused_not_invented(models):
    with pytest.raises(gr.Error, match="never saw 我 爱 你 in training, and nothing else in the text is English it knows"):
        tab.translate("我爱你", 2, "tiny", models=models)
    tab.translate("7", 2, "tiny", models=models)  # digits alone are no letters: the model may copy them


def test_a_number_the_translation_lacks_is_named_once(models):
    french, _, _, notes = tab.translate("We have 12 dogs and 3 cats.", 2, "tiny", models=models)
    # the tiny model never saw digits: they are named as unseen, not again as lacking
    assert "3" not in french and "never saw" in notes and " 3" in notes
    assert "missing from the translation (as digits)" not in notes


def test_unseen_scripts_are_translated_and_named_and_nfkc_applies(models):
    french, _, _, notes = tab.translate("We are ready Ж", 2, "tiny", models=models)
    assert ("never saw Ж" in notes) == ("Ж" not in french)  # named where the translation lacks it
    result = models["tiny"].translator.translate(["Ｗｅ are ready."], beam_size=2)[0]
    assert result.source == "We are ready."  # full-width letters folded by NFKC


@pytest.mark.parametrize("beam", [0, 11, float("nan"), "x"])
def test_beam_size_out_of_range_is_refused(models, beam):
    with pytest.raises(gr.Error, match="beam size"):
        tab.translate("We are ready.", beam, "tiny", models=models)


def test_unknown_model_and_no_model_are_clear_errors(models):
    with pytest.raises(gr.Error, match="unknown model"):
        tab.translate("Hi.", 5, "nope", models=models)
    with pytest.raises(gr.Error, match="no translation model"):
        tab.translate("Hi.", 5, None, models={})


def test_an_int8_translator_quantises_a_copy_and_leaves_the_float_model_alone(models):
    import torch
    from torch.ao.nn.quantized import dynamic
    float_model = models["tiny"].translator.model
    before = {k: v.clone() for k, v in float_model.state_dict().items()}
    int8 = Translator(float_model, models["tiny"].translator.source_tok, quantize=True)
    assert isinstance(int8.model.out, dynamic.Linear) and isinstance(int8.model.decoder, dynamic.GRU)
    assert isinstance(float_model.out, torch.nn.Linear) and not isinstance(float_model.out, dynamic.Linear)
    assert all(torch.equal(before[k], v) for k, v in float_model.state_dict().items())
    result = int8.translate(["We are ready."], beam_size=3)[0]
    torch.testing.assert_close(result.attention.sum(-1), torch.ones(len(result.target_pieces)))


def test_a_translation_is_one_line_even_when_byte_pieces_spell_control_characters(models):
    import torch
    from seqmodels.translator import _clean
    assert _clean("a\nb\r\n c\x00d\t e") == "a b c d e"
    tr = models["tiny"].translator
    newline = tr.target_tok.sp.piece_to_id("<0x0A>")
    original = tr.model.out.bias[newline].item()
    with torch.no_grad():  # make the model love the byte piece for "\n"
        tr.model.out.bias[newline] = 30.0
    try:
        result = tr.translate(["We are ready."], beam_size=2)[0]
        assert "\n" not in result.text and all("\n" not in c.text for c in result.candidates)
    finally:
        with torch.no_grad():
            tr.model.out.bias[newline] = original


def test_the_model_picker_says_its_bleu_was_measured_with_greedy_decoding(models):
    # "(val BLEU 46.5, greedy)" beside a beam of 5 read as if the model decoded greedily
    scored = {"tiny": tab.TranslationModel("tiny", None, models["tiny"].translator, {"val_bleu": 46.52})}
    with gr.Blocks() as demo:
        tab.build_tab(scored)
    picker = next(c for c in demo.blocks.values() if isinstance(c, gr.Radio) and c.label == "Model")
    assert picker.choices == [("tiny (validation BLEU 46.5, scored with greedy search)", "tiny")]
    assert "overlap with human translations" in picker.info  # what BLEU is, for a newcomer


def test_a_sentence_longer_than_tatoebas_says_parts_may_be_left_out_and_names_it_in_a_paste(models):
    long = "When I was a child my grandmother told me many stories about the village by the river before the war."
    _, _, _, notes = tab.translate(long, 1, "tiny", models=models)
    assert f"This sentence has over {tab.LONG_SENTENCE_WORDS} words" in notes
    _, _, _, notes = tab.translate(f"We are ready. {long} You are late.", 1, "tiny", models=models)
    assert "Sentence 2 has over" in notes
    _, _, _, notes = tab.translate("We are ready. You are late.", 1, "tiny", models=models)
    assert "words; the models learned" not in notes


def test_an_example_that_shows_a_limit_says_so_under_its_translation(models):
    english = next(english for english, _, right in tab.EXAMPLES if right is None)
    _, _, _, notes = tab.translate(english, 2, "tiny", models=models)
    assert "Note: this example shows a limit: “cinema”, a word it never saw" in notes
    _, _, _, notes = tab.translate("We are ready.", 2, "tiny", models=models)
    assert "this example shows" not in notes


def test_a_sentence_in_capitals_is_read_in_sentence_case_and_the_note_says_so(models):
    translator = models["tiny"].translator
    shouted, = translator.translate(["WE ARE READY. I AM LATE."], beam_size=1)
    plain, = translator.translate(["We are ready. I am late."], beam_size=1)
    assert shouted.source == plain.source == "We are ready. I am late." and shouted.text == plain.text
    assert any(n.endswith('it read "We are ready. I am late."') for n in shouted.notes)  # no second full stop
    assert not any("capitals" in n for n in plain.notes)
    from seqmodels.translator import _from_capitals
    pieces = {"OK.": (0, 2), "Ok.": (0, 3), "HELLO.": (0, 6), "Hello.": (0, 4)}.get
    # a word or two in capitals may be an acronym: sentence case only where the model's tokenizer reads it better
    assert _from_capitals("OK.", pieces) == "OK." and _from_capitals("HELLO.", pieces) == "Hello."
    assert _from_capitals("HELLO.") == "HELLO." and _from_capitals("WE ARE READY.") == "We are ready."


def test_a_reading_shared_by_several_sentences_of_a_paste_is_one_note_that_lists_each_reading(models):
    translator = models["tiny"].translator
    notes = translator.translate_passage("the cat sat. We are ready. the dog ran", beam_size=1).notes
    readings = [n for n in notes if "capital" in n]
    assert readings == ["Sentences 1 and 3: The model learnt from sentences that start with a capital and end with "
                        'punctuation; they were read as "The cat sat." and "The dog ran."']
    many = translator.translate_passage(" ".join(f"we sang {n}." for n in range(8)), beam_size=1).notes
    assert [n for n in many if "capital" in n][0].startswith("8 sentences: ") and many[0].endswith("and 5 more.")
    assert len(many) == len(set(n.split(": ", 1)[1] for n in many))  # each note said once, whatever it is
    shouted = [n for n in translator.translate_passage("WE ARE READY NOW. the dog ran", beam_size=1).notes
               if "capital" in n]
    assert shouted == ['Sentence 1: The input is written in capitals, which the model rarely saw; it read '
                       '"We are ready now."', 'Sentence 2: The model learnt from sentences that start with a capital '
                       'and end with punctuation; it read "The dog ran."']


@pytest.mark.parametrize("typed, read", [("hello", "Hello."), ("i think i can", "I think I can."),
                                         ("hello, how are you?", "Hello, how are you?"), ("3 cats", "3 cats."),
                                         ("are you hungry", "Are you hungry?")])
def test_a_sentence_typed_without_a_capital_or_final_stop_is_read_as_tatoeba_writes_them(models, typed, read):
    translator = models["tiny"].translator
    casual, = translator.translate([typed], beam_size=1)
    written, = translator.translate([read], beam_size=1)
    assert casual.source == written.source == read and casual.text == written.text
    assert any(n.endswith(f'it read "{read}"') for n in casual.notes)
    assert not any("capital" in n for n in written.notes)



def test_greedy_search_says_its_scores_are_plain_log_probs(models):
    *_, notes = tab.translate("We are ready.", 1, "tiny", models=models)
    assert "greedy search (no length penalty or stopping cost: score = log-prob)" in notes
    _, rows, _, _ = tab.translate("We are ready.", 1, "tiny", models=models)
    assert rows and all(row[3] == row[4] for row in rows)  # the score column is the log-prob column


def test_a_word_models_unknown_words_are_quoted_with_commas_and_its_unk_is_explained():
    from seqmodels.translator import lost_note

    note = lost_note(["zebra", "giraffe"], [1, 2], unk=True)
    assert note == ('The model never saw "zebra" and "giraffe" in training: they are missing from the translations of '
                    "sentences 1 and 2, which write <unk> (a word outside the model's vocabulary) instead.")
    assert lost_note(["cinema"]) == 'The model never saw "cinema" in training: it is missing from the translation.'
    assert lost_note(["Ж"]) == "The model never saw Ж in training: it is missing from the translation."  # characters as they are
    many = lost_note([f"w{i}x" for i in range(12)])
    assert '"w0x", "w1x"' in many and '"w9x" …' in many and "w10x" not in many
