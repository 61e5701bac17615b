import torch

from personalab.data.schema import Example
from personalab.models.batching import length_sorted_chunks, shuffled_length_grouped_batches


def rows(n):
    return [Example("p", "x" * ((i * 37) % 101 + 1), "y", "train") for i in range(n)]


def test_an_epoch_uses_every_row_once_in_batches_of_similar_length():
    data = rows(1000)
    batches = shuffled_length_grouped_batches(data, 16, torch.Generator().manual_seed(0))
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(1000))
    assert all(len(batch) <= 16 for batch in batches)
    spread = [max(len(data[i].input) for i in b) - min(len(data[i].input) for i in b) for b in batches]
    assert sum(spread) / len(spread) < 10  # random batches of lengths 1..101 would spread ~80


def test_same_seed_same_batches_other_seed_other_batches():
    data = rows(300)
    make = lambda seed: shuffled_length_grouped_batches(data, 8, torch.Generator().manual_seed(seed))  # noqa: E731
    assert make(1) == make(1)
    assert make(1) != make(2)


def test_scoring_chunks_cover_all_rows_longest_first():
    data = rows(50)
    chunks = length_sorted_chunks(data, 7)
    flat = [i for chunk in chunks for i in chunk]
    assert sorted(flat) == list(range(50))
    lengths = [len(data[i].input) for i in flat]
    assert lengths == sorted(lengths, reverse=True)
