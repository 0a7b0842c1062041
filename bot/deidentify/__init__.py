"""Finding people, organisations and UK identifiers in what a person wrote (Presidio over spaCy)."""
