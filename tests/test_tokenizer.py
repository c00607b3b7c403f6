from seqmodels import CharTokenizer
from seqmodels.tokenizers import tokenizer_from_dict


def test_decode_inverts_encode(tokenizer, tiny_text):
    enc = tokenizer.encode(tiny_text)
    assert enc.unknown == []
    assert tokenizer.decode(enc.ids) == tiny_text


def test_unknown_characters_are_dropped_and_reported_not_key_errors():
    tok = CharTokenizer.from_text("abc ")
    enc = tok.encode("a😀b ébæ")
    assert tok.decode(enc.ids) == "ab b"
    assert enc.unknown == ["😀", "é", "æ"]


def test_unknown_characters_can_be_mapped_to_a_replacement():
    tok = CharTokenizer.from_text("abc ")
    enc = tok.encode("aéb", replacement=" ")
    assert tok.decode(enc.ids) == "a b"
    assert enc.unknown == ["é"]


def test_tokenizer_survives_its_dict_round_trip(tokenizer):
    again = tokenizer_from_dict(tokenizer.to_dict())
    assert again.chars == tokenizer.chars
