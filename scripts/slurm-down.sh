#!/usr/bin/env bash
# Stops the one-node SLURM cluster that scripts/slurm-up.sh started and clears its state.
set -u
for p in /run/slurmd.pid /run/slurmctld.pid; do
  [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null
done
pkill -x munged 2>/dev/null
sleep 1
rm -rf /var/spool/slurmctld/* /var/spool/slurmd/*
exit 0
