"""Vocabulary ids and char-rnn's stream layout."""

import numpy as np
import pytest

from charnn.data.corpus import StreamBatcher, split_ids
from charnn.errors import CharnnError
from charnn.data.vocab import Vocab, one_hot


def test_vocab_is_sorted_distinct_and_round_trips():
    text = "hello, wörld 🙂"
    vocab = Vocab.from_text(text)
    assert list(vocab.chars) == sorted(set(text))
    ids = vocab.encode(text)
    assert ids.dtype == np.int32
    assert vocab.decode(ids) == text


def test_same_text_same_ids_regardless_of_order_seen():
    assert Vocab.from_text("abcabc") == Vocab.from_text("cbacba")


def test_unknown_character_names_char_and_position():
    vocab = Vocab.from_text("abc")
    with pytest.raises(CharnnError, match=r"'z' at position 2"):
        vocab.encode("abzq")
    assert vocab.unknown_chars("abzq") == ["q", "z"]


def test_empty_vocabulary_is_an_error():
    with pytest.raises(CharnnError, match="vocabulary size is 0"):
        Vocab.from_text("")


def test_one_hot():
    np.testing.assert_array_equal(one_hot([2, 0], 3), [[0, 0, 1], [1, 0, 0]])


def test_split_takes_val_then_test_from_the_tail():
    s = split_ids(np.arange(100), 0.1, 0.05)
    assert len(s.train) == 85 and s.val[0] == 85 and len(s.val) == 10 and s.test[-1] == 99


def test_streams_continue_across_chunks():
    ids = np.arange(41)  # B=2 streams of 20 predictions each, T=5 -> 4 chunks
    batcher = StreamBatcher(ids, batch_size=2, seq_len=5)
    assert batcher.num_chunks == 4
    x0, y0 = batcher.chunk(0)
    x1, _ = batcher.chunk(1)
    np.testing.assert_array_equal(x0, [[0, 1, 2, 3, 4], [20, 21, 22, 23, 24]])
    np.testing.assert_array_equal(y0, x0 + 1)
    np.testing.assert_array_equal(x1[:, 0], x0[:, -1] + 1)  # row b of chunk 1 continues row b of chunk 0
    assert batcher.starts_epoch(4) and not batcher.starts_epoch(3)
    np.testing.assert_array_equal(batcher.chunk(4)[0], x0)


def test_text_shorter_than_one_batch_is_an_error():
    with pytest.raises(CharnnError, match="batch_size x seq_len"):
        StreamBatcher(np.arange(10), batch_size=2, seq_len=5)
