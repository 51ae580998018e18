"""Model files: one .npz archive or one safetensors file, no pickle, written atomically,
read at bounded cost.

The archive holds the JSON header (UTF-8 bytes as a uint8 array under ``HEADER``,
described in ``_header``) and one float array per parameter, keyed by its
qualified name ("0.weight_ih_l0"); a safetensors file (``_safetensors``) the same tensors
under the same names, and the header as the string ``__metadata__[HEADER]``.
docs/model-files.md describes the formats, what ``load`` checks and its limits.

The path is used exactly as given: no ".npz" is appended (np.savez would append it to a
file name; writing through an open file avoids that).
"""
