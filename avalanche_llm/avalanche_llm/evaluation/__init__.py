"""Task evaluations under a gain: next-token NLL (dataset B) and ARC-style multiple choice."""
