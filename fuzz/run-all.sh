#!/bin/sh
# Runs the given targets (default: all) one after another for SECONDS each (default 600),
# at the lowest CPU priority, one libFuzzer process at a time. Logs go to fuzz/logs/.
set -u
cd "$(dirname "$0")"
secs=${SECONDS_EACH:-600}
targets=${*:-"rule_nlu whatsapp_signature twilio_form whatsapp_webhook twilio_signature"}
mkdir -p logs
for t in $targets; do
    case $t in
        whatsapp_webhook) max_len=8192 ;;
        *) max_len=4096 ;;
    esac
    mkdir -p corpus/$t seeds/$t
    log=logs/$t-$(date -u +%Y%m%dT%H%M%S).log
    echo "== $t for ${secs}s, max_len $max_len, log $log"
    nice -n 19 cargo +nightly fuzz run -O -a "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len="$max_len" \
        -print_final_stats=1 > "$log" 2>&1
    echo "   exit $?"
    grep -E "^#[0-9]+\s+DONE|stat::number_of_executed_units|stat::average_exec_per_sec|panicked at|SUMMARY|Test unit written" "$log"
done
