"""Model files: one .npz archive, no pickle, written atomically, read at bounded cost.

The archive holds the JSON header (UTF-8 bytes as a uint8 array under ``HEADER``,
described in ``_header``) and one float array per parameter, keyed by its
qualified name ("0.weight_ih_l0"). docs/model-files.md describes the format, what
``load`` checks and its limits.

The path is used exactly as given: no ".npz" is appended (np.savez would append it to a
file name; writing through an open file avoids that).
"""
