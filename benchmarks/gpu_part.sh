# Sourced by the GPU scripts: run one part of a device check with its own time limit.
#   part NAME SECONDS COMMAND...   -> $OUT/NAME.log, then the log's readable lines on stdout
# Each part writes its own log file (no pipes: torch.compile's worker processes outlive a killed
# parent and would hold a pipe open); Lightning's banners and warnings are filtered from what is
# printed, the log keeps everything.
part() {
  local name=$1 limit=$2; shift 2
  timeout -k 5 "$limit" "$@" > "$OUT/$name.log" 2>&1 < /dev/null
  echo "== $name (exit $?)"
  grep -v -E "[Ww]arn|^ |^$|available|litlogger|LOCAL_RANK|max_steps=|AMP|step [0-9]+/" \
    "$OUT/$name.log" | tail -40
}
