"""Figures and tables from saved artifacts, and their registered writes into a run."""
