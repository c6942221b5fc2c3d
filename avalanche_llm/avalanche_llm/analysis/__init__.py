"""Per-condition summaries of rasters (the numbers behind T01-T06) and g* selection."""
