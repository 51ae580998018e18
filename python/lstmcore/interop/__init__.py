"""Doors to other frameworks' model files and modules; each is imported only when used, and
its framework (h5py, torch, ...) only inside the functions that need it."""
