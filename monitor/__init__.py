"""Backlash Monitor: collect, score, chart and mail the reaction to a platform's policy change."""

__version__ = "0.1.0"
