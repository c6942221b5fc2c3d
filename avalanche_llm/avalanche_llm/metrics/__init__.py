"""Metrics of spike rasters: branching, susceptibility, avalanches, tails, crackling, MR, signatures, CIs."""
