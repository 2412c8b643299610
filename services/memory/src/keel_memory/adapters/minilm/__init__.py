"""all-MiniLM-L6-v2 without torch: the shipped safetensors weights, a NumPy BERT forward pass
and the ``tokenizers`` Rust tokenizer, pooled and normalised as sentence-transformers does."""

from keel_memory.adapters.minilm.embedder import MiniLMEmbedder, find_model_dir

__all__ = ["MiniLMEmbedder", "find_model_dir"]
