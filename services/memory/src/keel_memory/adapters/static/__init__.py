"""``minilm-static``: all-MiniLM-L6-v2 distilled into one vector per token (``distill.py``),
cached outside git (``table_cache.py``), embedded as a normalised weighted mean
(``embedder.py``). ``python -m keel_memory.adapters.static`` fills the cache."""

from keel_memory.adapters.static.embedder import SPACE, StaticEmbedder

__all__ = ["SPACE", "StaticEmbedder"]
