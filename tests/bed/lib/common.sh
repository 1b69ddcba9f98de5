# Shared helpers of tests/bed/{up,down,kubeconfig}. Source it; it sets `bed_here`
# (tests/bed), `STATE` (the bed's state directory, absolute) and `BED_MARK`.
# shellcheck shell=bash disable=SC2034 # variables for the sourcing scripts

bed_here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The state directory: BED_STATE, else $TMPDIR/ecr-operator-bed.
STATE="${BED_STATE:-${TMPDIR:-/tmp}/ecr-operator-bed}"
[[ "$STATE" == /* ]] || STATE="$PWD/$STATE"
STATE="${STATE%/}"
[[ -n "$STATE" && "$STATE" != "/" ]] || { echo "bed: refusing state directory '/'" >&2; exit 2; }

# Every process the bed starts carries this variable in its environment, so
# `down` finds them even without a pid file (crash between fork and pid file,
# a helper's grandchild, a state directory removed by hand).
BED_MARK="ECR_OPERATOR_BED_MEMBER=$STATE"

bed_log() { printf '%s %s\n' "bed:" "$*" >&2; }
bed_die() { printf '%s %s\n' "bed:" "$*" >&2; exit 1; }

# A file that marks a directory as a bed's state, so nothing ever removes a
# directory that BED_STATE points at by mistake.
BED_STAMP=".ecr-operator-bed"

# True when PID exists and is not a zombie.
bed_pid_alive() {
  local pid="$1" st
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/stat" ]] || return 1
  st="$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
  [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

# True when PID is a live process started by this bed: it has the bed's mark
# in its environment, or (for a process that cleared its environment) it
# started no later than its pid file was written, which a recycled pid cannot.
bed_pid_ours() {
  local pid="$1" pidfile="${2:-}"
  bed_pid_alive "$pid" || return 1
  if grep -qzxF -- "$BED_MARK" "/proc/$pid/environ" 2>/dev/null; then return 0; fi
  [[ -n "$pidfile" && -f "$pidfile" ]] || return 1
  local ticks btime hz start mtime
  ticks="$(sed 's/.*) //' "/proc/$pid/stat" | cut -d' ' -f20)" || return 1
  btime="$(awk '$1=="btime"{print $2}' /proc/stat)"
  hz="$(getconf CLK_TCK)"
  start=$((btime + ticks / hz))
  mtime="$(stat -c %Y "$pidfile")"
  ((start <= mtime + 2))
}

# Pids of live processes carrying the bed's mark, minus this shell and its
# ancestors (the watchdog execs `down`, so down must not kill itself).
bed_marked_pids() {
  local skip=" " p=$$ f pid
  while [[ "$p" =~ ^[0-9]+$ && "$p" != 0 ]]; do
    skip+="$p "
    p="$(awk '/^PPid:/{print $2}' "/proc/$p/status" 2>/dev/null)" || break
  done
  grep -lzxF -- "$BED_MARK" /proc/[0-9]*/environ 2>/dev/null | while read -r f; do
    pid="${f#/proc/}"; pid="${pid%/environ}"
    [[ "$skip" == *" $pid "* ]] && continue
    if bed_pid_alive "$pid"; then echo "$pid"; fi
  done
  return 0
}

# Free TCP ports on 127.0.0.1, N of them, distinct (all bound at once).
bed_free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# bed_spawn NAME CMD...: runs CMD detached (own session and process group),
# stdin from /dev/null, stdout and stderr to logs/NAME.log, pid in
# pids/NAME.pid. Descriptors above 2 are closed so no pipe of the caller
# (e.g. a test reading up's stdout) and no lock is held by the daemon.
bed_spawn() {
  local name="$1"; shift
  local log="$STATE/logs/$name.log"
  (
    bed_close_fds
    # shellcheck disable=SC2163 # exports NAME=VALUE held in BED_MARK
    export "$BED_MARK"
    exec setsid "$@" </dev/null >>"$log" 2>&1
  ) &
  echo $! >"$STATE/pids/$name.pid"
}

# Closes every descriptor above 2 of the current (sub)shell.
bed_close_fds() {
  local f fd
  for f in "/proc/$BASHPID/fd"/*; do
    fd="${f##*/}"
    ((fd > 2)) && eval "exec $fd>&-" 2>/dev/null
  done
  return 0
}

# Shell-safe `export NAME=VALUE` line (plain for ordinary values).
bed_export() {
  local v="$2"
  if [[ "$v" =~ ^[A-Za-z0-9_./:@%+,=-]*$ ]]; then
    printf 'export %s=%s\n' "$1" "$v"
  else
    printf 'export %s=%q\n' "$1" "$v"
  fi
}

# bed_cert DIR NAME SUBJECT EXTENSIONS [CA_DIR]: a P-256 key DIR/NAME.key
# (PKCS#8) and a certificate DIR/NAME.crt signed by CA_DIR/ca.{crt,key}
# (CA_DIR defaults to DIR). With NAME=ca the certificate is self-signed.
# EXTENSIONS: x509v3 config lines, one per line.
bed_cert() {
  local dir="$1" name="$2" subj="$3" ext="$4" cadir="${5:-$1}"
  local key="$dir/$name.key" crt="$dir/$name.crt" serial
  serial="0x7$(openssl rand -hex 15)"
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$key")
  local sign=(-CA "$cadir/ca.crt" -CAkey "$cadir/ca.key")
  [[ "$name" == ca ]] && sign=(-signkey "$key")
  openssl req -new -key "$key" -subj "$subj" |
    openssl x509 -req -sha256 -days 3650 -set_serial "$serial" "${sign[@]}" \
      -extfile <(printf '%s\n' "$ext") -out "$crt" 2>/dev/null
  [[ -s "$crt" ]] || bed_die "openssl could not make $crt"
}

# Extensions of a client certificate.
BED_CLIENT_EXT='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid'

# bed_kubeconfig OUT SERVER CA_FILE (--cert CRT KEY | --token TOKEN) USER:
# a self-contained kubeconfig (everything embedded), mode 0600.
bed_kubeconfig() {
  local out="$1" server="$2" ca="$3" kind="$4"
  local user_lines
  if [[ "$kind" == --cert ]]; then
    user_lines="    client-certificate-data: $(base64 -w0 <"$5")
    client-key-data: $(base64 -w0 <"$6")"
    shift 6
  else
    user_lines="    token: $5"
    shift 5
  fi
  local user="$1"
  (umask 077 && cat >"$out.tmp" <<KC
apiVersion: v1
kind: Config
clusters:
- name: bed
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 <"$ca")
users:
- name: $user
  user:
$user_lines
contexts:
- name: bed
  context:
    cluster: bed
    user: $user
    namespace: default
current-context: bed
preferences: {}
KC
  )
  mv "$out.tmp" "$out"
}
