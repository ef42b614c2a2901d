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
# CHORUS_TRAIN_OPTIONS: more options for every `chorus train`, split on spaces (the compose file's spark profile
# sets --engine spark --spark-master spark://spark-master:7077 --spark-staging /staging); with options and no
# CHORUS_TRAIN_DATA, the demo data is generated and trained on with them.
set -eu
options="${CHORUS_TRAIN_OPTIONS:-}"
artifacts="${CHORUS_ARTIFACTS:-/artifacts}"
demo=/tmp/demo.tsv.gz

if [ -n "${CHORUS_RETRAIN_EVERY:-}" ]; then
    data="${CHORUS_TRAIN_DATA:-}"
    if [ -z "$data" ]; then
        data="$demo"
        python -c 'import sys; from chorus.demo import ensure_demo_data; ensure_demo_data(sys.argv[1])' "$data"
    fi
    # shellcheck disable=SC2086 # the options are split on purpose
    exec chorus train --data "$data" --artifacts "$artifacts" --every "$CHORUS_RETRAIN_EVERY" $options
fi
if [ -f "$artifacts/CURRENT" ] && [ -z "${CHORUS_RETRAIN:-}" ]; then
    echo "artifacts present: $(cat "$artifacts/CURRENT")"
    exit 0
fi
if [ -n "${CHORUS_TRAIN_DATA:-}" ]; then
    # shellcheck disable=SC2086
    exec chorus train --data "$CHORUS_TRAIN_DATA" --artifacts "$artifacts" $options
fi
if [ -n "$options" ]; then
    python -c 'import sys; from chorus.demo import ensure_demo_data; ensure_demo_data(sys.argv[1])' "$demo"
    # shellcheck disable=SC2086
    exec chorus train --data "$demo" --artifacts "$artifacts" $options
fi
exec chorus demo --data "$demo" --artifacts "$artifacts"
