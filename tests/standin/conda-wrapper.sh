#!/bin/bash
# conda STAND-IN (mlops-env test double, NOT the real conda): installed by the stand-in
# Anaconda installer as PREFIX/bin/conda and PREFIX/condabin/conda. The logic lives in
# PREFIX/lib/conda-standin/conda.py (see its docstring for what is supported).
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
exec "$root/bin/python" -I "$root/lib/conda-standin/conda.py" "$@"
