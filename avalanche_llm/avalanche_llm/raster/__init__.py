"""Token x layer rasters: spike counts A, occupancy X, the NPZ layout, components, nulls."""
