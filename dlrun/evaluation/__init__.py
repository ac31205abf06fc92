"""Scores, statistics, summaries and comparisons."""
