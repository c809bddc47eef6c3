"""Clean-up and quality filters on real text in several languages (tessera.data.filters)."""

from __future__ import annotations

import unicodedata

from tessera.data.config import FilterConfig
from tessera.data.filters import normalize_nfc, quality_failure, strip_control_chars, strip_gutenberg

CFG = FilterConfig(min_chars=80)

ITALIAN = ("Quel ramo del lago di Como, che volge a mezzogiorno, tra due catene non interrotte di monti, "
           "tutto a seni e a golfi, a seconda dello sporgere e del rientrare di quelli, vien, quasi a "
           "un tratto, "
           "a ristringersi, e a prender corso e figura di fiume.")
GERMAN = ("Habe nun, ach! Philosophie, Juristerei und Medizin, und leider auch Theologie durchaus studiert, "
          "mit heißem Bemühn. Da steh ich nun, ich armer Tor! Und bin so klug als wie zuvor.")
SPANISH = ("En un lugar de la Mancha, de cuyo nombre no quiero acordarme, no ha mucho tiempo que vivía un "
           "hidalgo de los de lanza en astillero, adarga antigua, rocín flaco y galgo corredor.")


def test_nfc_composes_decomposed_accents():
    decomposed = unicodedata.normalize("NFD", "perché così è già città")
    assert decomposed != "perché così è già città"
    assert normalize_nfc(decomposed) == "perché così è già città"


def test_control_characters_removed_and_line_ends_normalised():
    dirty = "\ufeffDa steh ich nun,\x00 ich armer Tor!\r\nUnd bin so klug\u200b als wie zuvor.\rEnde\x1b"
    clean = "Da steh ich nun, ich armer Tor!\nUnd bin so klug als wie zuvor.\nEnde"
    assert strip_control_chars(dirty) == clean
    # Tabs and newlines are text, not control noise.
    assert strip_control_chars("a\tb\nc") == "a\tb\nc"


def test_gutenberg_header_and_footer_removed_from_don_quijote(shared_data):
    text = (shared_data / "corpus" / "es" / "don_quijote.txt").read_text(encoding="utf-8")
    body = strip_gutenberg(text)
    assert "START OF THE PROJECT GUTENBERG" not in body
    assert "Project Gutenberg" not in body
    assert "En un lugar de la Mancha" in body
    assert len(body) > 0.9 * len(text) - 30_000


def test_gutenberg_old_style_footer_removed_from_promessi_sposi(shared_data):
    text = (shared_data / "corpus" / "it" / "promessi_sposi.txt").read_text(encoding="utf-8")
    body = strip_gutenberg(text)
    assert "End of the Project Gutenberg EBook" in text
    assert "Project Gutenberg" not in body
    assert "Quel ramo del lago di Como" in body


def test_text_without_gutenberg_markers_is_unchanged():
    assert strip_gutenberg(ITALIAN) == ITALIAN


def test_real_prose_passes_quality_in_three_languages():
    for text in (ITALIAN, GERMAN, SPANISH):
        assert quality_failure(text, CFG) is None, text[:40]


def test_quality_reasons():
    assert quality_failure("Nel mezzo del cammin di nostra vita.", CFG) == "too_short"
    table = "| --- | --- | --- |\n" * 3 + "| ## | ** | ~~ | ^^ | <> | {} | == | ++ |\n" * 10
    assert quality_failure(table, CFG) == "symbol_ratio"
    numbers = "Tabella 3: " + "1234 5678 9012 3456 7890 " * 6 + "valori"
    assert quality_failure(numbers, CFG) == "digit_ratio"
    repeated = "\n".join(["Iscriviti alla newsletter!", GERMAN[:60]] + ["Iscriviti alla newsletter!"] * 5)
    assert quality_failure(repeated, CFG) == "repeated_lines"


def test_character_classes_count_as_a_test_per_character_would():
    """The code-point table gives the counts of the plain per-character tests, astral and combining
    characters included (quality_failure's symbol and digit ratios rest on them)."""
    import random

    from tessera.data.filters import _PROSE_PUNCTUATION, _character_classes

    def per_character(text: str) -> tuple[int, int, int]:
        visible = [c for c in text if not c.isspace()]
        symbols = sum(1 for c in visible if not (c.isalnum() or c in _PROSE_PUNCTUATION
                                                or unicodedata.category(c).startswith("M")))
        return len(visible), symbols, sum(1 for c in visible if c.isdigit())

    rng = random.Random(0)
    texts = ["", "Nel mezzo del cammin di nostra vita, 1321.",
             "e\u0301te\u0301 ²³ \u2003 ٣٤ 🙂🙂 ∑∫ <b>x</b>"]
    texts += ["".join(chr(rng.choice([rng.randrange(0x20, 0x3000), rng.randrange(0x1F300, 0x1F700), 0x0301,
                                      0x00B2, 0x2003, 0xD7FF])) for _ in range(300)) for _ in range(200)]
    for text in texts:
        counts = _character_classes(text)
        assert (len(text) - counts[0], counts[3], counts[2]) == per_character(text), text[:40]
