"""The loader: deterministic in (seed, step), restartable, rank-disjoint, mixture-exact, strict on files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tessera.data.loader import (
    MIXTURE_BLOCK,
    TokenLoader,
    _feistel_permute,
    apportion,
    sequences_per_language,
)
from tessera.data.tokens import open_token_file, suffixed, write_token_file
from tessera.errors import DataError

EOS = 1


def _write(stem: Path, documents: list[list[int]], lang: str, sha: str = "abc") -> Path:
    meta = {"vocab_size": 1000, "tokenizer_sha256": sha, "eos_id": EOS, "language": lang, "split": "train"}
    with write_token_file(stem, meta) as writer:
        writer.add_documents(documents)
        writer.num_bytes = sum(len(d) for d in documents)
    return stem


@pytest.fixture
def stems(tmp_path: Path) -> dict[str, Path]:
    # Each language's ids live in its own range, so a row's language is visible from its ids.
    rng = np.random.default_rng(0)
    out = {}
    for base, lang in ((100, "ita"), (400, "eng")):
        docs = [list(rng.integers(base, base + 250, size=int(rng.integers(5, 60)))) for _ in range(80)]
        out[lang] = _write(tmp_path / lang / "train", docs, lang)
    return out


def _loader(stems, **kw) -> TokenLoader:
    args = dict(mixture={"ita": 0.75, "eng": 0.25}, seq_len=16, micro_batch_size=4, seed=7)
    args.update(kw)
    return TokenLoader(stems, **args)


def test_token_file_round_trip(tmp_path: Path):
    docs = [[5, 6, 7], [8], [9, 10]]
    file = open_token_file(_write(tmp_path / "x", docs, "ita"))
    assert file.num_documents == 3 and file.num_tokens == 9
    assert file.tokens.dtype == np.uint16
    assert [list(file.document(i)) for i in range(3)] == [[5, 6, 7, EOS], [8, EOS], [9, 10, EOS]]


def test_same_seed_and_step_give_same_batch(stems):
    a, b = _loader(stems), _loader(stems)
    for step in (0, 3, 1000):
        x1, y1 = a.batch(step)
        x2, y2 = b.batch(step)
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(a.batch(0)[0], a.batch(1)[0])
    assert not torch.equal(a.batch(5)[0], _loader(stems, seed=8).batch(5)[0])


def test_batch_shapes_and_shift(stems):
    loader = _loader(stems)
    inputs_BT, targets_BT = loader.batch(2)
    assert inputs_BT.shape == targets_BT.shape == (4, 16)
    assert inputs_BT.dtype == targets_BT.dtype == torch.int64
    assert torch.equal(inputs_BT[:, 1:], targets_BT[:, :-1])
    assert loader.tokens_per_batch == 64


def test_restart_at_step_k_equals_uninterrupted_run(stems):
    uninterrupted = _loader(stems, grad_accum_steps=2)
    expected = [uninterrupted.batch(s, m) for s in range(12) for m in range(2)]
    restarted = _loader(stems, grad_accum_steps=2)  # a fresh process resuming at step 7
    resumed = [restarted.batch(s, m) for s in range(7, 12) for m in range(2)]
    for (x1, y1), (x2, y2) in zip(expected[14:], resumed, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def _windows(loader: TokenLoader, steps: int, micro_steps: int = 1) -> list[tuple[str, int]]:
    out = []
    for step in range(steps):
        for micro in range(micro_steps):
            out += loader.sample_windows(loader.sample_numbers(step, micro))
    return out


def test_ranks_and_micro_steps_are_disjoint(stems):
    world = 3
    ranks = [
        _loader(stems, rank=r, world_size=world, grad_accum_steps=2, micro_batch_size=2) for r in range(world)
    ]
    # Stay within one epoch of the smaller language, where every window may be drawn only once.
    seen = [w for loader in ranks for w in _windows(loader, steps=3, micro_steps=2)]
    assert len(seen) == len(set(seen)) == 3 * 2 * 2 * world
    batches = [loader.batch(1, 1)[0] for loader in ranks]
    assert not torch.equal(batches[0], batches[1]) and not torch.equal(batches[1], batches[2])


def test_epoch_visits_every_window_once(stems):
    loader = _loader(stems, mixture={"ita": 1.0}, micro_batch_size=8)
    n = loader.num_windows["ita"]
    seen = [w for _, w in loader.sample_windows(np.arange(n))]
    assert sorted(seen) == list(range(n))
    second_epoch = [w for _, w in loader.sample_windows(np.arange(n, 2 * n))]
    assert sorted(second_epoch) == list(range(n)) and second_epoch != seen


def test_mixture_is_exact_per_block(stems):
    loader = _loader(stems)
    languages = [lang for lang, _ in loader.sample_windows(np.arange(MIXTURE_BLOCK))]
    assert languages.count("ita") == 3072 and languages.count("eng") == 1024
    inputs_BT, _ = loader.batch(0)
    for row in inputs_BT:
        ids = row[row != EOS]
        assert bool(((ids >= 100) & (ids < 350)).all()) or bool(((ids >= 400) & (ids < 650)).all())


def test_apportion_keeps_tiny_weights():
    counts = apportion({"ita": 1.0, "eng": 1e-6, "fra": 0.0}, 4096)
    assert counts == {"ita": 4095, "eng": 1}
    assert sum(apportion({"a": 1, "b": 1, "c": 1}, 4096).values()) == 4096


def test_feistel_is_a_permutation():
    keys = np.arange(1, 7, dtype=np.uint64)
    for n in (1, 2, 7, 1000, 4097):
        out = _feistel_permute(np.arange(n, dtype=np.uint64), n, keys)
        assert sorted(out.tolist()) == list(range(n))


def test_truncated_bin_names_the_file(stems):
    bin_path = suffixed(stems["ita"], ".bin")
    bin_path.write_bytes(bin_path.read_bytes()[:-2])
    with pytest.raises(DataError, match=r"ita/train\.bin.*truncated"):
        _loader(stems)


def test_mismatched_idx_names_the_file(stems):
    idx_path = suffixed(stems["eng"], ".idx")
    offsets = np.fromfile(idx_path, dtype="<i8")
    offsets[-1] += 3
    offsets.tofile(idx_path)
    with pytest.raises(DataError, match=r"eng/train\.idx.*offsets"):
        _loader(stems)


def test_missing_metadata_and_foreign_tokenizer(stems, tmp_path):
    suffixed(stems["eng"], ".json").unlink()
    with pytest.raises(DataError, match=r"eng/train\.json.*missing"):
        _loader(stems)
    stems["eng"] = _write(tmp_path / "other" / "train", [[400, 401]] * 50, "eng", sha="def")
    with pytest.raises(DataError, match="different tokenizers"):
        _loader(stems)


def test_language_too_small_for_one_sequence(stems, tmp_path):
    stems["eng"] = _write(tmp_path / "tiny" / "train", [[400, 401]], "eng")
    with pytest.raises(DataError, match=r"tiny/train\.bin.*cannot fill one sequence"):
        _loader(stems)


def test_rows_are_packed_slices_of_the_token_files(stems):
    loader = _loader(stems, rank=1, world_size=2, grad_accum_steps=2)
    inputs_BT, targets_BT = loader.batch(4, 1)
    numbers = loader.sample_numbers(4, 1)
    # Step 4, micro-step 1 of 2, rank 1 of 2: the ((4 * 2 + 1) * 2 + 1)-th run of micro_batch_size.
    assert numbers[0] == ((4 * 2 + 1) * 2 + 1) * loader.micro_batch_size
    windows = loader.sample_windows(numbers)
    for row, (lang, window) in enumerate(windows):
        tokens = np.asarray(open_token_file(stems[lang]).tokens, dtype=np.int64)
        expected = tokens[window * 16 : window * 16 + 17]  # seq_len + 1: documents run on across EOS
        assert inputs_BT[row].tolist() == expected[:-1].tolist()
        assert targets_BT[row].tolist() == expected[1:].tolist()


def test_a_language_in_many_shards_reads_as_one_stream(tmp_path: Path):
    """An index over a split's token shards gives the batches of one file holding the same documents:
    windows that cross a shard boundary are joined, and resume stays a function of the step."""
    from tessera.data.tokens import write_token_index

    rng = np.random.default_rng(3)
    docs = {lang: [list(rng.integers(base, base + 250, size=int(rng.integers(5, 60)))) for _ in range(90)]
            for base, lang in ((100, "ita"), (400, "eng"))}
    whole = {lang: _write(tmp_path / "whole" / lang / "train", d, lang) for lang, d in docs.items()}
    sharded = {}
    for lang, d in docs.items():
        cuts = [0, 7, 8, 50, 90]  # one shard holds a single document, so windows span three shards
        parts = [_write(tmp_path / "sharded" / lang / "train" / f"{i:05d}", d[a:b], lang)
                 for i, (a, b) in enumerate(zip(cuts, cuts[1:], strict=False))]
        sharded[lang] = tmp_path / "sharded" / lang / "train"
        write_token_index(sharded[lang], parts)
    one, many = _loader(whole, world_size=2, rank=1), _loader(sharded, world_size=2, rank=1)
    assert many.num_windows == one.num_windows
    for step in (0, 1, 17, 400):
        assert torch.equal(one.batch(step)[0], many.batch(step)[0])
        assert torch.equal(one.batch(step)[1], many.batch(step)[1])


def test_sequences_per_language_replays_what_the_ranks_draw(stems):
    # The release reports tokens per language from this replay, without token files: it must count exactly
    # the languages of the rows every rank's batches hold, over a partial last block too.
    world, accum, steps = 2, 3, 190
    counts = {"ita": 0, "eng": 0}
    for rank in range(world):
        loader = _loader(stems, rank=rank, world_size=world, grad_accum_steps=accum)
        for step in range(steps):
            for micro in range(accum):
                for lang, _ in loader.sample_windows(loader.sample_numbers(step, micro)):
                    counts[lang] += 1
    num_samples = steps * accum * world * 4
    assert num_samples > MIXTURE_BLOCK and num_samples % MIXTURE_BLOCK
    assert sequences_per_language({"ita": 0.75, "eng": 0.25}, 7, num_samples) == counts
