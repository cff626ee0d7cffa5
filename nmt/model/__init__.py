"""The network: encoder, bridge, decoder, attention, loss. It knows no
corpora, no command line and no trainer."""
