"""Translation: greedy and beam search, ensembles, forced scoring, the
Translator. It needs no trainer."""
