"""Data: sources (named sets, CSV, scikit-learn, generators) and preprocessing."""
