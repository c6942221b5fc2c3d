"""Evaluation: paired episodes of trained and baseline Tamiyos, BCa CIs, figures, results tables."""
