"""Package root; see the folder README for what it does."""
