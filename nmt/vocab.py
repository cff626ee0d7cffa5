"""The ids of the special pieces, fixed when sentencepiece is trained
and assumed by the network (padding, unknown, start and end of sentence)."""

PAD, UNK, BOS, EOS = 0, 1, 2, 3
