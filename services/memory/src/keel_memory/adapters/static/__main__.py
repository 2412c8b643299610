"""Fill the static embedding cache (``make install`` runs this); logs the table's path."""

from __future__ import annotations

import logging
import sys

from keel_memory.adapters.minilm import find_model_dir
from keel_memory.adapters.static.embedder import StaticEmbedder


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    StaticEmbedder.load(find_model_dir())


if __name__ == "__main__":
    main()
