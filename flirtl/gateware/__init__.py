"""Amaranth gateware of the Seq2SeqLite IP: arithmetic twins, activations, MAC lanes, GRU engine,
lifetime extraction and the AXI4-Stream top."""
