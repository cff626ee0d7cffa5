"""Corpora: sources (toy, files, hub), sentencepiece, the Arrow cache,
batch order. It knows no network."""
