"""Torch models of the GRU encoder-decoder: teacher, Seq2SeqLite students, distillation, QAT."""
