# Shared by bench/peers/*.sh (sourced, not run): paths, process cleanup, port and readiness checks,
# and the offline tokenizer the Python clients need.

PEERS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PEERS_BUILD=${PEERS_BUILD:-$PEERS_ROOT/build/peers}
GIMBAL=${GIMBAL:-$PEERS_ROOT/build/release/src/cli/gimbal}
# The tokenizer: DeepSeek-V3's tokenizer.json as shipped inside the litellm wheel on PyPI.
TOKENIZER_PKG=${TOKENIZER_PKG:-litellm==1.110.2}
TOKENIZER_MEMBER=litellm/litellm_core_utils/tokenizers/deepseek_tokenizer.json
TOKENIZER_DIR=$(realpath -m "${TOKENIZER_DIR:-$PEERS_BUILD/tokenizer-deepseek-v3}")  # absolute: aiperf
# takes a relative path for a hub name
# Never reach for a model hub: the clients get a local tokenizer folder.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1

PEERS_PIDS=()

peers_die() { echo "error: $*" >&2; exit 1; }

peers_cleanup() {
  local pid
  for pid in "${PEERS_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PEERS_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PEERS_PIDS=()
}

# Starts a command in the background with its output in a log; remembers its pid for cleanup.
peers_spawn() {
  local log=$1; shift
  "$@" >"$log" 2>&1 &
  PEERS_PIDS+=("$!")
}

peers_port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# First base port >= $1 with $2 consecutive free ports.
peers_pick_ports() {
  local base=$1 count=$2 p ok
  while ((base + count < 65535)); do
    ok=1
    for ((p = base; p < base + count; p++)); do peers_port_free "$p" || { ok=0; break; }; done
    ((ok)) && { echo "$base"; return 0; }
    base=$((base + count))
  done
  return 1
}

# Waits until GET $1 answers 200 (at most $2 seconds).
peers_wait_http() {
  local url=$1 secs=${2:-30} i
  for ((i = 0; i < secs * 10; i++)); do
    curl -sf -o /dev/null "$url" && return 0
    sleep 0.1
  done
  return 1
}

# A local Hugging Face tokenizer folder (tokenizer.json + tokenizer_config.json) taken from a PyPI
# package, so vllm bench serve and aiperf run with no hub access.
peers_tokenizer() {
  [[ -s $TOKENIZER_DIR/tokenizer.json && -s $TOKENIZER_DIR/tokenizer_config.json ]] && return 0
  local pip=$1 wheels=$PEERS_BUILD/wheels
  mkdir -p "$wheels" "$TOKENIZER_DIR"
  "$pip" download -q --no-deps -d "$wheels" "$TOKENIZER_PKG" || peers_die "pip download $TOKENIZER_PKG failed"
  local whl
  whl=$(ls "$wheels"/litellm-"${TOKENIZER_PKG#*==}"-*.whl | head -1)
  python3 - "$whl" "$TOKENIZER_MEMBER" "$TOKENIZER_DIR" <<'EOF'
import json, sys, zipfile
whl, member, out = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    data = z.read(member)
open(f"{out}/tokenizer.json", "wb").write(data)
# The wheel ships tokenizer.json alone; this config names the fast tokenizer class and the
# DeepSeek-V3 special tokens (ids 0 and 1 of that file).
json.dump({"tokenizer_class": "PreTrainedTokenizerFast",
           "bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>",
           "pad_token": "<｜end▁of▁sentence｜>", "model_max_length": 131072,
           "clean_up_tokenization_spaces": False},
          open(f"{out}/tokenizer_config.json", "w"), ensure_ascii=False, indent=1)
EOF
}
