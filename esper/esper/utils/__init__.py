"""Utilities: task data (images, EOS-joined token windows) and figures."""
