"""Teaching the small model: the follow-up training set, its checks, and `spanner train` (optional extra)."""
