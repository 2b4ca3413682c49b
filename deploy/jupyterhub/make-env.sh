#!/usr/bin/env bash
# The Python environment the hub and every learner's server run in, readable by all:
#   sudo deploy/jupyterhub/make-env.sh [/opt/dbkit-course]
# It must be built from a Python other users can run: a system one (/usr/bin/python3),
# not one under /root (pyenv, conda in root's home), which learners cannot enter.
# dbkit itself is not installed in it: each learner imports the dbkit of their own copy.
set -euo pipefail
ENV=${1:-/opt/dbkit-course}
PYTHON=${PYTHON:-/usr/bin/python3}
COURSE=$(cd "$(dirname "$0")/../.." && pwd)
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "needs Python 3.11+")'
"$PYTHON" -m venv "$ENV"
"$ENV/bin/python" -m pip install --quiet --upgrade pip
"$ENV/bin/python" -m pip install --quiet "$COURSE[lab,hub]"
"$ENV/bin/python" -m pip uninstall --quiet --yes dbkit
# the proxy JupyterHub needs, next to the config (npm's cache in a throwaway folder)
cache=$(mktemp -d)
npm ci --prefix "$COURSE/deploy/jupyterhub" --cache "$cache" --no-audit --no-fund --no-update-notifier
rm -rf "$cache"
echo "ready: DBKIT_HUB_ENV=$ENV $ENV/bin/jupyterhub -f $COURSE/deploy/jupyterhub/jupyterhub_config.py"
