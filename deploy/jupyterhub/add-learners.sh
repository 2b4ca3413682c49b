#!/usr/bin/env bash
# Learner accounts for the hub, each with a password of their own, printed once:
#   sudo deploy/jupyterhub/add-learners.sh alice bob carol   > passwords.txt
# Each is a system user in the group dbkit-learners (the hub lets only them in), with a
# private home (mode 700). An existing user is only added to the group; no password of
# an existing account is changed.
set -euo pipefail
GROUP=dbkit-learners
getent group "$GROUP" >/dev/null || groupadd "$GROUP"
for name in "$@"; do
    if id "$name" >/dev/null 2>&1; then
        usermod -a -G "$GROUP" "$name"
        echo "$name: exists, added to $GROUP (password unchanged)"
        continue
    fi
    useradd --create-home -K HOME_MODE=0700 --shell /bin/bash -G "$GROUP" "$name"
    password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(9))')
    echo "$name:$password" | chpasswd
    echo "$name  $password"
done
