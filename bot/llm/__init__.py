"""The local language model behind the engine's Generator port."""
