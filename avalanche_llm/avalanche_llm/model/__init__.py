"""Models: loading on one device, MLP hooks that capture u, gain interventions, batched forward passes."""
