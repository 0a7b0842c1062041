"""Documents Spanner hands to a person: portfolio forms as PDF (reportlab)."""
