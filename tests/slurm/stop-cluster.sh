#!/usr/bin/env bash
# Stop the local test cluster started by start-cluster.sh (same environment variables).
exec "$(dirname "$0")/start-cluster.sh" stop
