"""Language identification (tessera.data.langid) on real sentences, ISO 639-3 codes out."""

from __future__ import annotations

from tessera.data.langid import identify, other_language

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
    assert other_language(SENTENCES["eng"], "ita", 0.5) == "eng"
    assert other_language(SENTENCES["ita"], "ita", 0.5) is None
    # A confidence threshold above 1 never overrides the declared language.
    assert other_language(SENTENCES["eng"], "ita", 1.01) is None
