"""Literature retrieval: offline embeddings and a chroma index over knowledge/ (never journals)."""
