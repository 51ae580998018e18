"""What every part of lstmcore leans on and none owns: argument checks, cache-line aligned
arrays, atomic file writes, NumPy's BLAS threads."""
