"""Starts one engine per MPI (or Slurm) rank with engine id = first id + rank.

``mpiexec -n 4 python -m cpar.cluster.rankexec --first-id 0 -- cpar-engine ARGS`` runs, in
each rank, ``cpar-engine ARGS --id RANK`` (``{rank}`` and ``{id}`` in ARGS are replaced,
e.g. for a log file per rank), so ``rc[k]`` is MPI rank ``k``. The rank comes from the
environment the launcher sets: OpenMPI (``OMPI_COMM_WORLD_RANK``), MPICH/Hydra and Intel
MPI (``PMI_RANK``), PMIx (``PMIX_RANK``), Slurm's ``srun`` (``SLURM_PROCID``).
"""

import os
import sys

RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID")


def rank_from_env(env=None):
    env = os.environ if env is None else env
    for var in RANK_VARIABLES:
        value = env.get(var, "").strip()
        if value.isdigit():
            return int(value)
    return None


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    first_id = 0
    if argv[:1] == ["--first-id"]:
        first_id = int(argv[1])
        argv = argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m cpar.cluster.rankexec [--first-id N] -- ENGINE ARGS...",
              file=sys.stderr)
        return 2
    rank = rank_from_env()
    if rank is None:
        print("cpar rankexec: no rank in the environment (looked for "
              + ", ".join(RANK_VARIABLES) + "): run me under mpiexec or srun",
              file=sys.stderr)
        return 2
    eid = first_id + rank
    args = [a.replace("{rank}", str(rank)).replace("{id}", str(eid)) for a in argv]
    os.execv(args[0], args + ["--id", str(eid)])


if __name__ == "__main__":
    sys.exit(main())
