"""Language identification (tessera.data.langid) on real sentences, ISO 639-3 codes out."""

from __future__ import annotations

import pytest

from tessera.data.langid import ISO639_1_TO_3, _sample, identify, identify_batch, other_languages

SENTENCES = {
    "ita": "Nel mezzo del cammin di nostra vita mi ritrovai per una selva oscura, ché la diritta via era "
           "smarrita.",
    "eng": "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
           "foolishness.",
    "fra": "Longtemps, je me suis couché de bonne heure. Parfois, à peine ma bougie éteinte, mes yeux se "
           "fermaient si vite que je n'avais pas le temps de me dire: Je m'endors.",
    "deu": "Als Gregor Samsa eines Morgens aus unruhigen Träumen erwachte, fand er sich in seinem Bett zu "
           "einem ungeheueren Ungeziefer verwandelt.",
    "spa": "En un lugar de la Mancha, de cuyo nombre no quiero acordarme, no ha mucho tiempo que vivía un "
           "hidalgo de los de lanza en astillero.",
    "por": "Uma noite destas, vindo da cidade para o Engenho Novo, encontrei no trem da Central um rapaz "
           "aqui do bairro, que eu conheço de vista e de chapéu.",
}


def test_each_language_identified_with_its_iso639_3_code():
    for language, sentence in SENTENCES.items():
        code, probability = identify(sentence)
        assert code == language, (language, code)
        assert probability > 0.9


def test_other_language_only_when_confident():
    texts = [SENTENCES["eng"], SENTENCES["ita"]]
    assert other_languages(texts, "ita", 0.5) == ["eng", None]
    # A confidence threshold above 1 never overrides the declared language.
    assert other_languages(texts, "ita", 1.01) == [None, None]


def _reference():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def _assert_same_as_py3langid(texts: list[str]) -> None:
    reference = _reference()
    got = identify_batch(texts)
    for text, (code, probability) in zip(texts, got, strict=True):
        want_code, want_probability = reference.classify(_sample(text))
        assert code == ISO639_1_TO_3.get(want_code, want_code), text[:60]
        assert probability == pytest.approx(want_probability, abs=1e-5), text[:60]


def test_batch_walk_equals_py3langid_on_edge_cases():
    """Empty, featureless, upper-case, non-Latin, long (sampled) and mixed texts: same code and probability
    as py3langid's own one-document classifier."""
    texts = ["", " ", "12345", "a", "ÉCOLE NORMALE SUPÉRIEURE", "Привет, как дела?", "こんにちは世界",
             "e\u0301te\u0301", *SENTENCES.values(), SENTENCES["eng"] * 40 + SENTENCES["ita"] * 40,
             "\n".join(SENTENCES.values())]
    _assert_same_as_py3langid(texts)


def test_batch_answer_does_not_depend_on_the_batch():
    texts = list(SENTENCES.values()) * 3
    assert identify_batch(texts) == [identify(text) for text in texts]


def test_batch_walk_equals_py3langid_on_flores(flores_lines):
    """Every FLORES devtest language tessera reads, 200 lines each."""
    _assert_same_as_py3langid(flores_lines)


@pytest.fixture(scope="module")
def flores_lines(shared_data) -> list[str]:
    lines = []
    for path in sorted((shared_data / "eval" / "flores200" / "devtest").glob("*.devtest")):
        lines += path.read_text(encoding="utf-8").splitlines()[:200]
    return lines
