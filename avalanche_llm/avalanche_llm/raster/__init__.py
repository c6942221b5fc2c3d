"""Token x layer rasters: spike counts A and occupancy X, NPZ layout [C, N, L, T], and null models."""
