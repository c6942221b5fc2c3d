"""Run-directory I/O: hashing, deterministic NPZ, the run record and its schema, logs, release."""
