#!/usr/bin/env bash
# Real Kubernetes control planes for Flotilla's tests and `flotilla up`.
#
# No kube-apiserver binary is in any registry this project reaches, so the
# binaries are built once from Debian bookworm's own source package
# `kubernetes` (v1.20.2) into a cache folder outside the repository and reused
# afterwards.  See docs/kubernetes.md.
#
# Usage:
#   scripts/kube-up.sh build
#       Build (or reuse) kube-apiserver, kube-controller-manager, kube-scheduler.
#       Prints the folder holding the binaries on the last line.
#   scripts/kube-up.sh up DIR NAME... [--base-port PORT]
#       Start one etcd and one control plane per NAME on 127.0.0.1 under DIR;
#       writes DIR/NAME/kubeconfig (mode 0600) and DIR/clusters.json.
#   scripts/kube-up.sh start DIR NAME      (re)start one cluster's apiserver
#   scripts/kube-up.sh stop DIR NAME       SIGKILL one cluster's apiserver
#   scripts/kube-up.sh down DIR            stop everything started under DIR
#
# Environment:
#   FLOTILLA_KUBE_CACHE  cache folder (default /var/cache/flotilla/kube-1.20.2)
#   KUBE_BUILD_NICE      niceness for the Go build (default 10)
set -euo pipefail

KUBE_VERSION=1.20.2
CACHE=${FLOTILLA_KUBE_CACHE:-/var/cache/flotilla/kube-${KUBE_VERSION}}
BIN=${CACHE}/bin
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler)

log() { printf '[kube-up %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

have_binaries() {
  local b
  for b in "${BINARIES[@]}"; do [[ -x ${BIN}/${b} ]] || return 1; done
  [[ $("${BIN}/kube-apiserver" --version 2>/dev/null) == "Kubernetes v${KUBE_VERSION}" ]]
}

ensure_deb_src() {
  if apt-cache showsrc kubernetes 2>/dev/null | grep -q "^Version: .*really${KUBE_VERSION}"; then
    return
  fi
  log "adding a deb-src line for bookworm and running apt-get update"
  cat >/etc/apt/sources.list.d/flotilla-bookworm-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt-get update -q >/dev/null
}

build() {
  if have_binaries; then
    log "reusing cached binaries in ${BIN}"
    echo "${BIN}"
    return
  fi
  local started=${SECONDS}
  command -v go >/dev/null || { log "golang-go is required (apt-get install golang-go)"; exit 1; }
  local reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
  [[ -f ${reflect2}/go_above_118.go ]] || {
    log "golang-github-modern-go-reflect2-dev (>= 1.0.2) is required"; exit 1; }
  mkdir -p "${CACHE}/src" "${BIN}"
  local tree
  tree=$(find "${CACHE}/src" -maxdepth 1 -type d -name "kubernetes-*really${KUBE_VERSION}" | head -n1)
  if [[ -z ${tree} ]]; then
    ensure_deb_src
    log "fetching Debian's source package kubernetes (34 MB)"
    (cd "${CACHE}/src" && apt-get source -q kubernetes >/dev/null 2>&1)
    tree=$(find "${CACHE}/src" -maxdepth 1 -type d -name "kubernetes-*really${KUBE_VERSION}" | head -n1)
  fi
  [[ -n ${tree} ]] || { log "apt-get source kubernetes gave no tree"; exit 1; }
  log "building in ${tree}"
  # reflect2 v1.0.1 reads runtime internals that moved in Go 1.18 and crashes
  # at start ("unexpected fault address"); Debian's 1.0.2 is the fixed one.
  if ! grep -q 'go_above_118' <(ls "${tree}/vendor/github.com/modern-go/reflect2"); then
    log "replacing vendored github.com/modern-go/reflect2 v1.0.1 with Debian's v1.0.2"
    rm -rf "${tree}/vendor/github.com/modern-go/reflect2"
    cp -r "${reflect2}" "${tree}/vendor/github.com/modern-go/reflect2"
    rm -f "${tree}/vendor/github.com/modern-go/reflect2/go.mod"
  fi
  (
    cd "${tree}"
    # GOPATH mode, as Kubernetes 1.20's own build scripts expect.
    export GO111MODULE=off CGO_ENABLED=0 HOME=${CACHE}/home GOFLAGS=
    mkdir -p "${HOME}"
    local nice_cmd=(nice -n "${KUBE_BUILD_NICE:-10}")
    local openapi=pkg/generated/openapi/zz_generated.openapi.go
    if [[ ! -s ${openapi} ]]; then
      log "generating ${openapi} with the tree's own openapi-gen"
      "${nice_cmd[@]}" hack/make-rules/build.sh ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
      # The input list is the Makefile's KUBE_OPENAPI_DIRS: every Go folder of
      # the tree (staging named as its vendor/ alias) with an openapi-gen tag.
      local dirs
      dirs=$(find -H . \( -path './_*' -o -path './.*' -o -path ./vendor -o -path ./debian \) -prune \
               -o -type f -name '*.go' -print0 \
             | xargs -0 grep --color=never -l '^// *+k8s:openapi-gen=' \
             | sed -e 's|^\./||' -e 's|^staging/src/|vendor/|' -e 's|/[^/]*$||' \
             | grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' \
             | LC_ALL=C sort -u | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -)
      "${nice_cmd[@]}" hack/run-in-gopath.sh _output/local/go/bin/openapi-gen \
        --logtostderr -i "${dirs}" -p k8s.io/kubernetes/pkg/generated/openapi \
        -O zz_generated.openapi -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
        -r "${tree}/_output/KUBE_violations.report"
    fi
    log "compiling ${BINARIES[*]} (GOPATH mode, $(go version | cut -d' ' -f3))"
    "${nice_cmd[@]}" hack/make-rules/build.sh "${BINARIES[@]/#/cmd/}"
    local b
    for b in "${BINARIES[@]}"; do install -m 0755 "_output/bin/${b}" "${BIN}/${b}"; done
  )
  have_binaries || { log "built binaries do not report v${KUBE_VERSION}"; exit 1; }
  log "built in $((SECONDS - started)) s"
  echo "${BIN}"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A process that exited but is not reaped yet (a zombie: its parent, e.g. `flotilla up`
# as a subreaper, is busy running this script) counts as gone.
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

pid_alive() { [[ -f $1 ]] && running "$(cat "$1")"; }

# Start a detached process whose pid goes to $1 and output to $2; the rest is argv.
spawn() {
  local pidfile=$1 logfile=$2; shift 2
  setsid "$@" >>"${logfile}" 2>&1 </dev/null &
  echo $! >"${pidfile}"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then log "timed out waiting for ${what}"; return 1; fi
    sleep 0.2
  done
}

pki() {  # one CA and one serving pair for 127.0.0.1, shared by the clusters under $1
  local dir=$1/pki
  [[ -f ${dir}/serving.crt ]] && return
  mkdir -p "${dir}" && chmod 0700 "${dir}"
  (
    cd "${dir}"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=flotilla-kube-ca \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver -keyout serving.key \
      -out serving.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc\n' >san.ext
    openssl x509 -req -in serving.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile san.ext -out serving.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    chmod 0600 ./*.key
  )
}

start_etcd() {
  local dir=$1
  pid_alive "${dir}/etcd.pid" && return
  local client peer
  client=$(free_port); peer=$(free_port)
  mkdir -p "${dir}/etcd" && chmod 0700 "${dir}/etcd"
  echo "http://127.0.0.1:${client}" >"${dir}/etcd.url"
  spawn "${dir}/etcd.pid" "${dir}/etcd.log" etcd --name kube --data-dir "${dir}/etcd" \
    --listen-client-urls "http://127.0.0.1:${client}" \
    --advertise-client-urls "http://127.0.0.1:${client}" \
    --listen-peer-urls "http://127.0.0.1:${peer}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${peer}" \
    --initial-cluster "kube=http://127.0.0.1:${peer}"
  wait_for 30 "etcd" curl -sf "http://127.0.0.1:${client}/health"
}

# The apiserver of cluster $2 under $1; its port, token and kubeconfig are made once.
start_apiserver() {
  local dir=$1 name=$2 c=$1/$2
  mkdir -p "${c}" && chmod 0700 "${c}"
  pid_alive "${c}/apiserver.pid" && return
  [[ -f ${c}/port ]] || free_port >"${c}/port"
  local port token
  port=$(cat "${c}/port")
  if [[ ! -f ${c}/tokens.csv ]]; then
    token=$(openssl rand -hex 24)
    (umask 077; printf '%s,flotilla-admin,flotilla-admin,"system:masters"\n' "${token}" >"${c}/tokens.csv")
    (umask 077; cat >"${c}/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: ${name}
  cluster:
    server: https://127.0.0.1:${port}
    certificate-authority: ${dir}/pki/ca.crt
users:
- name: ${name}-admin
  user:
    token: ${token}
contexts:
- name: ${name}
  context: {cluster: ${name}, user: ${name}-admin}
current-context: ${name}
KC
)
  fi
  local p=${dir}/pki
  spawn "${c}/apiserver.pid" "${c}/apiserver.log" "${BIN}/kube-apiserver" \
    --etcd-servers "$(cat "${dir}/etcd.url")" --etcd-prefix "/flotilla-kube/${name}" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "${port}" \
    --insecure-port 0 --tls-cert-file "${p}/serving.crt" --tls-private-key-file "${p}/serving.key" \
    --client-ca-file "${p}/ca.crt" --token-auth-file "${c}/tokens.csv" \
    --authorization-mode RBAC --service-cluster-ip-range 10.96.0.0/16 \
    --service-account-key-file "${p}/sa.pub" --service-account-signing-key-file "${p}/sa.key" \
    --service-account-issuer https://kubernetes.default.svc \
    --disable-admission-plugins ServiceAccount --profiling=false --logtostderr
  wait_for 60 "the apiserver of ${name}" kubectl --kubeconfig "${c}/kubeconfig" get --raw /readyz
}

start_controllers() {
  local dir=$1 name=$2 c=$1/$2 p=$1/pki
  pid_alive "${c}/controller-manager.pid" || spawn "${c}/controller-manager.pid" \
    "${c}/controller-manager.log" "${BIN}/kube-controller-manager" \
    --kubeconfig "${c}/kubeconfig" --leader-elect=false --port 0 --secure-port 0 \
    --service-account-private-key-file "${p}/sa.key" --root-ca-file "${p}/ca.crt" \
    --use-service-account-credentials=false --controllers '*,-nodeipam' \
    --logtostderr
  pid_alive "${c}/scheduler.pid" || spawn "${c}/scheduler.pid" "${c}/scheduler.log" \
    "${BIN}/kube-scheduler" --kubeconfig "${c}/kubeconfig" --leader-elect=false \
    --port 0 --secure-port 0 --logtostderr
}

write_index() {  # DIR/clusters.json: name -> kubeconfig, server
  local dir=$1 name first=1
  {
    printf '{'
    for name in $(cat "${dir}/names"); do
      ((first)) || printf ','
      first=0
      printf '"%s": {"kubeconfig": "%s", "server": "https://127.0.0.1:%s"}' \
        "${name}" "${dir}/${name}/kubeconfig" "$(cat "${dir}/${name}/port")"
    done
    printf '}\n'
  } >"${dir}/clusters.json"
}

up() {
  local dir=$1; shift
  [[ $# -gt 0 ]] || { log "up: name at least one cluster"; exit 2; }
  build >/dev/null
  mkdir -p "${dir}" && chmod 0700 "${dir}"
  dir=$(cd "${dir}" && pwd)
  pki "${dir}"
  start_etcd "${dir}"
  local name
  touch "${dir}/names"
  for name in "$@"; do
    [[ ${name} =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || { log "bad cluster name ${name}"; exit 2; }
    grep -qx "${name}" "${dir}/names" || echo "${name}" >>"${dir}/names"
    start_apiserver "${dir}" "${name}"
    start_controllers "${dir}" "${name}"
    log "cluster ${name}: https://127.0.0.1:$(cat "${dir}/${name}/port") (kubeconfig ${dir}/${name}/kubeconfig)"
  done
  write_index "${dir}"
}

stop_pid() {  # stop_pid SIGNAL PIDFILE
  if pid_alive "$2"; then
    kill "-$1" "$(cat "$2")" 2>/dev/null || true
    local i
    for i in $(seq 100); do running "$(cat "$2")" || break; sleep 0.1; done
  fi
  rm -f "$2"
}

down() {
  local dir=$1 name proc
  [[ -f ${dir}/names ]] || return 0
  for name in $(cat "${dir}/names"); do
    for proc in scheduler controller-manager apiserver; do stop_pid TERM "${dir}/${name}/${proc}.pid"; done
  done
  stop_pid TERM "${dir}/etcd.pid"
}

case ${1:-} in
  build) build ;;
  up) shift; up "$@" ;;
  start) build >/dev/null; start_apiserver "$2" "$3" ;;
  stop) stop_pid KILL "$2/$3/apiserver.pid" ;;
  down) down "$2" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
