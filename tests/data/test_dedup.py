"""Exact and MinHash/LSH near-duplicate detection as array operations (tessera.data.dedup)."""

from __future__ import annotations

import numpy as np

from tessera.data.config import FilterConfig
from tessera.data.dedup import (
    EXACT,
    NEAR,
    Sketcher,
    band_keys,
    candidate_pairs,
    cluster_removals,
    jaccard_rows,
    lsh_shape,
    shingle_hashes,
)

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


def _near_pairs(texts: list[str]) -> list[tuple[int, int]]:
    """Pairs (i, j) of texts whose LSH bands collide and whose signatures agree above the threshold."""
    cfg = FilterConfig()
    signatures = np.array([SKETCHER.signature(t) for t in texts], dtype=np.uint32)
    bands, rows = lsh_shape(cfg)
    found = set()
    for keys in band_keys(signatures, bands, rows):
        first, other = candidate_pairs(keys, np.arange(len(texts), dtype=np.uint64))
        similarity = jaccard_rows(signatures[first.astype(int)], signatures[other.astype(int)])
        keep = similarity >= cfg.near_dup_threshold
        found |= set(zip(first[keep].tolist(), other[keep].tolist(), strict=True))
    return sorted(found)


def test_near_duplicate_with_one_word_changed():
    edited = PARAGRAPH.replace("mezzogiorno", "settentrione")
    assert edited != PARAGRAPH
    assert _near_pairs([PARAGRAPH, OTHER, edited]) == [(0, 2)]


def test_exact_digests_differ_for_different_text():
    assert SKETCHER.digest(PARAGRAPH) == SKETCHER.digest(PARAGRAPH) != SKETCHER.digest(OTHER)


def test_lsh_shape_fits_the_permutations():
    bands, rows = lsh_shape(FilterConfig())
    assert bands * rows <= 128 and bands > 1


def test_buckets_pair_every_member_with_the_first():
    keys = np.array([7, 3, 7, 7, 5], dtype=np.uint64)
    docs = np.array([40, 10, 20, 30, 50], dtype=np.uint64)
    first, other = candidate_pairs(keys, docs)
    assert list(zip(first.tolist(), other.tolist(), strict=True)) == [(20, 30), (20, 40)]


def test_clusters_keep_their_smallest_document():
    # 1-2 exact, 2-3 near, 3-4 near: one cluster whose first is 1; 8-9 another, 9 an exact copy.
    first = np.array([1, 2, 3, 8], dtype=np.uint64)
    other = np.array([2, 3, 4, 9], dtype=np.uint64)
    kind = np.array([EXACT, NEAR, NEAR, EXACT], dtype=np.uint8)
    removed, reason = cluster_removals(first, other, kind)
    assert removed.tolist() == [2, 3, 4, 9]
    assert reason.tolist() == [EXACT, NEAR, NEAR, EXACT]
    assert cluster_removals(first[:0], other[:0], kind[:0])[0].size == 0


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


def test_signature_equals_datasketch_affine32_minhash():
    """The numpy signature gives the values datasketch's MinHash.update_batch gives for the same shingles,
    with the permutations datasketch draws (scheme affine32, seed 1)."""
    from datasketch import MinHash

    cfg = FilterConfig()
    for text in (PARAGRAPH, "", "one", PARAGRAPH.upper() * 3):
        reference = MinHash(num_perm=cfg.minhash_permutations, seed=1, hashfunc=int, scheme="affine32")
        reference.update_batch(shingle_hashes(text, cfg.shingle_words))
        assert (SKETCHER.signature(text) == reference.hashvalues).all()
        assert SKETCHER.signature(text).dtype == np.uint32
