#!/bin/sh
# The trainer image's command (deploy/Dockerfile). Three modes, by environment variable:
#
#   one-shot (default), like `chorus up`: when the artifact root already has a version, exit at once (CHORUS_RETRAIN=1
#     trains anyway); otherwise train on CHORUS_TRAIN_DATA (a path inside the container), or on freshly generated demo
#     data when that is empty.
#   loop (CHORUS_RETRAIN_EVERY=30m, 1h, ...): `chorus train --every`, which trains at once when there is no version or
#     the event store (CHORUS_EVENTS_URL, required) holds events past the current version's cutoff, then checks
#     again every CHORUS_RETRAIN_EVERY; it runs until stopped (SIGTERM ends it cleanly).
#
# With CHORUS_EVENTS_URL set, every training also takes the store's events (chorus train --events-url).
set -eu
artifacts="${CHORUS_ARTIFACTS:-/artifacts}"
demo=/tmp/demo.tsv.gz

if [ -n "${CHORUS_RETRAIN_EVERY:-}" ]; then
    data="${CHORUS_TRAIN_DATA:-}"
    if [ -z "$data" ]; then
        data="$demo"
        python -c 'import sys; from chorus.demo import ensure_demo_data; ensure_demo_data(sys.argv[1])' "$data"
    fi
    exec chorus train --data "$data" --artifacts "$artifacts" --every "$CHORUS_RETRAIN_EVERY"
fi
if [ -f "$artifacts/CURRENT" ] && [ -z "${CHORUS_RETRAIN:-}" ]; then
    echo "artifacts present: $(cat "$artifacts/CURRENT")"
    exit 0
fi
if [ -n "${CHORUS_TRAIN_DATA:-}" ]; then
    exec chorus train --data "$CHORUS_TRAIN_DATA" --artifacts "$artifacts"
fi
exec chorus demo --data "$demo" --artifacts "$artifacts"
