"""Figures (plots/, by family) and the self-contained HTML report (context, parts, html)."""
