"""Events: standardised activations, spike definitions, and rate-matched thresholds."""
