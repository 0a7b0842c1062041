"""`spanner eval`: the instrument that measures what Spanner says, on a held-out dev set in eval/."""
