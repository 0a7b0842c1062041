"""Spanner's persistence layer: SQLAlchemy models, encrypted fields, migrations, the Journal port."""
