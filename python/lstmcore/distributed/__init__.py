"""Past one machine (docs/distributed.md).

- Training: ``model.fit(..., distributed="mpi")`` under ``mpiexec -n N``, data-parallel
  over the ranks of an MPI job (the loop is ``lstmcore.nn._train``, its collectives
  ``lstmcore.nn._mpi``); a rank that fails makes the others raise ``RankFailed``.
- Batch inference: ``predict(model_path, data, client=None, ...)`` over a Dask cluster.

mpi4py and dask are imported only when these run, never by ``import lstmcore``.
"""

from lstmcore.distributed._dask import predict
from lstmcore.nn._mpi import RankFailed

__all__ = ["predict", "RankFailed"]
