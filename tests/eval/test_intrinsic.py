"""Bits per byte and perplexity on cases small enough to compute by hand."""

from __future__ import annotations

import math

import pytest
import torch

from tessera.data.tokens import open_token_file, write_token_file
from tessera.errors import DataError
from tessera.eval.intrinsic import gaps_to_best, score_documents, score_token_file

VOCAB = 4
EOS = 0


def uniform_logits(ids_BT: torch.Tensor) -> torch.Tensor:
    """Every token equally likely: exactly log2(VOCAB) = 2 bits per token."""
    return torch.zeros(*ids_BT.shape, VOCAB)


def successor_logits(ids_BT: torch.Tensor) -> torch.Tensor:
    """p(next = current + 1 mod 4) = 3 / (3 + 3) = 1/2; each other token 1/6."""
    logits_BTV = torch.zeros(*ids_BT.shape, VOCAB)
    logits_BTV.scatter_(-1, ((ids_BT + 1) % VOCAB).unsqueeze(-1), math.log(3.0))
    return logits_BTV


def test_uniform_model_scores_two_bits_per_token():
    # 4 tokens at 2 bits each over 16 bytes of text: 8 / 16 bits per byte; perplexity = vocabulary size.
    score = score_documents(uniform_logits, [[1, 2, 3], [2]], 16, eos_id=EOS, context_length=8)
    assert score.nll_bits == pytest.approx(8.0)
    assert score.num_tokens == 4
    assert score.bits_per_byte == pytest.approx(0.5)
    assert score.perplexity == pytest.approx(4.0)


@pytest.mark.parametrize("context_length", [1, 2, 8])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_windows_and_batches_score_every_token_once(context_length, batch_size):
    # After EOS (0) the doc [1, 2, 3] follows the successor rule: 1 bit per token = 3 bits.
    # [3, 1]: 3 after EOS and 1 after 3 are both off-rule: log2(6) bits each.
    # Windows cut the documents and padding fills the batches, but the model only looks one token back,
    # so the total must not change with either.
    score = score_documents(
        successor_logits, [[1, 2, 3], [3, 1]], 10, eos_id=EOS, context_length=context_length,
        batch_size=batch_size,
    )
    expected_bits = 3 * 1.0 + 2 * math.log2(6)
    assert score.nll_bits == pytest.approx(expected_bits, rel=1e-5)
    assert score.bits_per_byte == pytest.approx(expected_bits / 10, rel=1e-5)
    assert score.perplexity == pytest.approx(2 ** (expected_bits / 5), rel=1e-5)


def test_matches_cross_entropy_of_a_real_model():
    torch.manual_seed(0)
    layer = torch.nn.Sequential(torch.nn.Embedding(VOCAB, 8), torch.nn.GRU(8, 8, batch_first=True))
    head = torch.nn.Linear(8, VOCAB)

    def logits_fn(ids_BT):
        return head(layer(ids_BT)[0])

    doc = [1, 3, 2, 2, 1]
    ids_BT = torch.tensor([[EOS, *doc]])
    with torch.no_grad():
        nats = torch.nn.functional.cross_entropy(logits_fn(ids_BT[:, :-1])[0], ids_BT[0, 1:], reduction="sum")
    score = score_documents(logits_fn, [doc], 7, eos_id=EOS, context_length=16)
    assert score.nll_bits == pytest.approx(nats.item() / math.log(2), rel=1e-5)


def _token_file(tmp_path, documents, text_bytes):
    stem = tmp_path / "tokens" / "ita" / "test"
    stem.parent.mkdir(parents=True)
    meta = {"vocab_size": VOCAB, "tokenizer_sha256": "0" * 64, "eos_id": EOS, "language": "ita",
            "split": "test"}
    with write_token_file(stem, meta) as writer:
        writer.add_documents(documents)
        writer.num_bytes = text_bytes
    return open_token_file(stem)


def test_token_file_whole_split_uses_measured_bytes(tmp_path):
    token_file = _token_file(tmp_path, [[1, 2], [3, 3, 1]], 20)
    score = score_token_file(uniform_logits, token_file, decode=lambda ids: "never called", context_length=4)
    assert (score.num_tokens, score.num_bytes, score.num_documents) == (5, 20, 2)
    assert score.bits_per_byte == pytest.approx(10 / 20)


def test_token_file_prefix_counts_decoded_bytes(tmp_path):
    token_file = _token_file(tmp_path, [[1, 2], [3, 3, 1], [2]], 30)
    # "è" is two UTF-8 bytes: bytes are counted after encoding, not as characters.
    score = score_token_file(
        uniform_logits, token_file, decode=lambda ids: "è" * len(ids), context_length=4, max_tokens=4
    )
    assert (score.num_tokens, score.num_documents, score.num_bytes) == (2, 1, 4)


def test_nothing_to_score_is_a_data_error():
    with pytest.raises(DataError, match="nothing to score"):
        score_documents(uniform_logits, [], 10, eos_id=EOS, context_length=4)


def test_gap_to_best_language():
    gaps = gaps_to_best({"ita": 1.25, "eng": 1.0, "fra": 1.5})
    assert gaps == {"ita": pytest.approx(0.25), "eng": 0.0, "fra": pytest.approx(0.5)}
