"""Peer implementations of jaxgan's benchmark step in other frameworks (PyTorch)."""
