"""Exact and MinHash/LSH near-duplicate detection (tessera.data.dedup)."""

from __future__ import annotations

from tessera.data.config import FilterConfig
from tessera.data.dedup import Deduplicator, Sketcher, shingle_hashes

PARAGRAPH = ("Quel ramo del lago di Como, che volge a mezzogiorno, tra due catene non interrotte di "
             "monti, tutto "
             "a seni e a golfi, a seconda dello sporgere e del rientrare di quelli, vien, quasi a un "
             "tratto, a "
             "ristringersi, e a prender corso e figura di fiume, tra un promontorio a destra, e "
             "un'ampia costiera "
             "dall'altra parte; e il ponte, che ivi congiunge le due rive, par che renda ancor più sensibile "
             "all'occhio questa trasformazione, e segni il punto in cui il lago cessa, e l'Adda rincomincia.")
OTHER = ("Habe nun, ach! Philosophie, Juristerei und Medizin, und leider auch Theologie durchaus "
         "studiert, mit "
         "heißem Bemühn. Da steh ich nun, ich armer Tor! Und bin so klug als wie zuvor; heiße Magister, "
         "heiße "
         "Doktor gar und ziehe schon an die zehen Jahr herauf, herab und quer und krumm meine Schüler "
         "an der Nase.")


SKETCHER = Sketcher(FilterConfig())


def test_exact_duplicate_detected_once_seen():
    dedup = Deduplicator(FilterConfig())
    assert not dedup.is_exact_duplicate(SKETCHER.digest(PARAGRAPH))
    assert dedup.is_exact_duplicate(SKETCHER.digest(PARAGRAPH))
    assert not dedup.is_exact_duplicate(SKETCHER.digest(OTHER))


def test_near_duplicate_with_one_word_changed():
    dedup = Deduplicator(FilterConfig())
    assert not dedup.is_near_duplicate(SKETCHER.signature(PARAGRAPH))
    edited = PARAGRAPH.replace("mezzogiorno", "settentrione")
    assert edited != PARAGRAPH
    assert dedup.is_near_duplicate(SKETCHER.signature(edited))
    assert not dedup.is_near_duplicate(SKETCHER.signature(OTHER))


def test_disabled_filters_flag_nothing():
    dedup = Deduplicator(FilterConfig(dedup_exact=False, dedup_near=False))
    for _ in range(2):
        assert not dedup.is_exact_duplicate(SKETCHER.digest(PARAGRAPH))
        assert not dedup.is_near_duplicate(SKETCHER.signature(PARAGRAPH))


def test_signatures_are_deterministic():
    assert (Sketcher(FilterConfig()).signature(PARAGRAPH) == SKETCHER.signature(PARAGRAPH)).all()


def test_shingle_hashes_are_of_lowercased_ordered_word_ngrams():
    assert len(shingle_hashes("A b c", 5)) == 1
    assert list(shingle_hashes("A b c", 5)) == list(shingle_hashes("a B, c!", 5))
    assert len(shingle_hashes("Uno due tre quattro", 3)) == 2
    # Order matters: the same words in another order are another shingle.
    assert set(shingle_hashes("uno due tre", 3)).isdisjoint(shingle_hashes("tre due uno", 3))
    # Repeated n-grams count once.
    assert len(shingle_hashes("la la la la la", 2)) == 1
    assert all(h < 2**32 for h in shingle_hashes("Nel mezzo del cammin di nostra vita", 5))
