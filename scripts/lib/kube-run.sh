# shellcheck shell=bash
# scripts/kube: the cluster's processes (launch, readiness, stop), its network and its images.
# Sourced by scripts/kube after lib/common.sh and lib/kube.sh.

comp_pidfile() { echo "$KUBE_RUN/$1.pid"; }
comp_log() { echo "$LOG_DIR/kube-$1.log"; }
# Every command line names a file under KUBE_DIR, so a recycled pid is never taken for ours.
comp_pid() { read_pidfile "$(comp_pidfile "$1")" "$KUBE_DIR"; }

comp_ports() {
  case $1 in
  etcd) echo "$KUBE_ETCD_PORT $KUBE_ETCD_PEER_PORT" ;;
  kube-apiserver) echo "$KUBE_API_PORT" ;;
  kube-controller-manager) echo 10257 ;;
  kube-scheduler) echo 10259 ;;
  kubelet) echo "10250 10248" ;;
  kube-proxy) echo "10256 10249" ;;
  esac
}

comp_addr() {
  case $1 in
  etcd) echo "https://127.0.0.1:$KUBE_ETCD_PORT" ;;
  kube-apiserver) echo "$KUBE_API_URL" ;;
  kube-controller-manager) echo "https://127.0.0.1:10257" ;;
  kube-scheduler) echo "https://127.0.0.1:10259" ;;
  containerd) echo "unix://$CONTAINERD_SOCK" ;;
  kubelet) echo "https://$KUBE_NODE_IP:10250" ;;
  kube-proxy) echo "http://127.0.0.1:10256" ;;
  kube-router) echo "iptables $KUBE_ROUTER_CHAIN" ;;
  esac
}

# The command line of each component, into CMD.
comp_cmd() {
  local p=$KUBE_PKI
  case $1 in
  etcd)
    CMD=("$KUBE_BIN/etcd" --name "$KUBE_NODE_NAME" --data-dir "$KUBE_DIR/etcd"
      --listen-client-urls "https://127.0.0.1:$KUBE_ETCD_PORT"
      --advertise-client-urls "https://127.0.0.1:$KUBE_ETCD_PORT"
      --listen-peer-urls "http://127.0.0.1:$KUBE_ETCD_PEER_PORT"
      --initial-advertise-peer-urls "http://127.0.0.1:$KUBE_ETCD_PEER_PORT"
      --initial-cluster "$KUBE_NODE_NAME=http://127.0.0.1:$KUBE_ETCD_PEER_PORT"
      --client-cert-auth --trusted-ca-file "$p/etcd-ca.crt"
      --cert-file "$p/etcd-server.crt" --key-file "$p/etcd-server.key"
      --log-level warn)
    ;;
  kube-apiserver)
    CMD=("$KUBE_BIN/kube-apiserver"
      --advertise-address "$KUBE_NODE_IP" --bind-address "$KUBE_NODE_IP" --secure-port "$KUBE_API_PORT"
      --etcd-servers "https://127.0.0.1:$KUBE_ETCD_PORT"
      --etcd-cafile "$p/etcd-ca.crt" --etcd-certfile "$p/apiserver-etcd-client.crt" --etcd-keyfile "$p/apiserver-etcd-client.key"
      --client-ca-file "$p/ca.crt" --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key"
      --kubelet-client-certificate "$p/apiserver-kubelet-client.crt" --kubelet-client-key "$p/apiserver-kubelet-client.key"
      --kubelet-certificate-authority "$p/ca.crt" --kubelet-preferred-address-types InternalIP
      --service-account-issuer "https://kubernetes.default.svc.$KUBE_CLUSTER_DOMAIN"
      --service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key"
      --service-cluster-ip-range "$KUBE_SERVICE_CIDR"
      --authorization-mode "Node,RBAC" --enable-admission-plugins NodeRestriction
      --allow-privileged=true --profiling=false)
    ;;
  kube-controller-manager)
    CMD=("$KUBE_BIN/kube-controller-manager"
      --kubeconfig "$KUBE_CONF/controller-manager.kubeconfig"
      --authentication-kubeconfig "$KUBE_CONF/controller-manager.kubeconfig"
      --authorization-kubeconfig "$KUBE_CONF/controller-manager.kubeconfig"
      --bind-address 127.0.0.1 --leader-elect=false --profiling=false
      --client-ca-file "$p/ca.crt" --root-ca-file "$p/ca.crt"
      --cluster-signing-cert-file "$p/ca.crt" --cluster-signing-key-file "$p/ca.key"
      --service-account-private-key-file "$p/sa.key" --use-service-account-credentials=true
      --service-cluster-ip-range "$KUBE_SERVICE_CIDR" --cluster-cidr "$KUBE_POD_CIDR"
      --allocate-node-cidrs=false)
    ;;
  kube-scheduler)
    CMD=("$KUBE_BIN/kube-scheduler"
      --kubeconfig "$KUBE_CONF/scheduler.kubeconfig"
      --authentication-kubeconfig "$KUBE_CONF/scheduler.kubeconfig"
      --authorization-kubeconfig "$KUBE_CONF/scheduler.kubeconfig"
      --bind-address 127.0.0.1 --leader-elect=false --profiling=false)
    ;;
  containerd)
    CMD=(containerd --config "$KUBE_CONF/containerd.toml" --log-level warn)
    ;;
  kubelet)
    CMD=("$KUBE_BIN/kubelet" --config "$KUBE_CONF/kubelet.yaml"
      --kubeconfig "$KUBE_CONF/kubelet.kubeconfig" --root-dir "$KUBE_DIR/kubelet"
      --hostname-override "$KUBE_NODE_NAME" --node-ip "$KUBE_NODE_IP")
    ;;
  kube-proxy)
    CMD=("$KUBE_BIN/kube-proxy" --config "$KUBE_CONF/kube-proxy.yaml")
    ;;
  kube-router)
    # The NetworkPolicy firewall only (iptables and ipset); no health or metrics server, so it
    # listens nowhere (its health port would take every address).
    CMD=("$KUBE_BIN/kube-router" --kubeconfig "$KUBE_CONF/kube-router.kubeconfig"
      --run-firewall=true --run-router=false --run-service-proxy=false
      --hostname-override "$KUBE_NODE_NAME" --service-cluster-ip-range "$KUBE_SERVICE_CIDR"
      --enable-ipv6=false --health-port 0 --metrics-port 0 --iptables-sync-period 1m)
    ;;
  esac
}

comp_ready() {
  local p=$KUBE_PKI
  case $1 in
  etcd)
    curl -sf --max-time 3 --cacert "$p/etcd-ca.crt" --cert "$p/apiserver-etcd-client.crt" \
      --key "$p/apiserver-etcd-client.key" "https://127.0.0.1:$KUBE_ETCD_PORT/health" 2>/dev/null |
      grep -q '"health":"true"'
    ;;
  kube-apiserver)
    [[ $(curl -sf --max-time 3 --cacert "$p/ca.crt" --cert "$p/admin.crt" --key "$p/admin.key" \
      "$KUBE_API_URL/readyz" 2>/dev/null) == ok ]]
    ;;
  kube-controller-manager) [[ $(curl -skf --max-time 3 https://127.0.0.1:10257/healthz 2>/dev/null) == ok ]] ;;
  kube-scheduler) [[ $(curl -skf --max-time 3 https://127.0.0.1:10259/healthz 2>/dev/null) == ok ]] ;;
  containerd) ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1 ;;
  kubelet) [[ $(curl -sf --max-time 3 http://127.0.0.1:10248/healthz 2>/dev/null) == ok ]] ;;
  kube-proxy) curl -sf --max-time 3 http://127.0.0.1:10256/healthz >/dev/null 2>&1 ;;
  # Its chains are hooked in (it does so after its caches have synced; stop removes them).
  kube-router) iptables -w -S FORWARD 2>/dev/null | grep -q -- "-j $KUBE_ROUTER_CHAIN\$" ;;
  esac
}

comp_launch() {
  local c=$1 log port pid
  for port in $(comp_ports "$c"); do
    if port_in_use "$port"; then
      pid=$(port_listener_pids "$port" | head -n 1)
      die "$c: port $port is already in use${pid:+ by pid $pid ($(pid_cmdline "$pid"))}, which is not ours: stop it first"
    fi
  done
  comp_cmd "$c"
  # shellcheck disable=SC2034 # read by scripts/kube
  if [[ $c == kubelet ]]; then KUBELET_LAUNCHED=1; fi
  log=$(comp_log "$c")
  rotate_log "$log"
  printf '\n--- %s: %s\n' "$(date -u +%FT%TZ)" "${CMD[*]}" >>"$log"
  # setsid: own session, so a Ctrl-C or a test runner's process-group kill does not hit it.
  nohup setsid "${CMD[@]}" >>"$log" 2>&1 </dev/null 9>&- 7>&- &
  pid=$!
  echo "$pid" >"$(comp_pidfile "$c")"
  info "$c" "started (pid $pid, log $log)"
}

# start_group COMPONENT...: launch those not running, then wait until each is ready.
start_group() {
  local c pid t0 deadline note
  local -A launched=()
  for c in "$@"; do
    pid=$(comp_pid "$c")
    if [[ -n $pid ]]; then
      if comp_ready "$c"; then
        info "$c" "already running and ready (pid $pid)"
        continue
      fi
      info "$c" "already running (pid $pid), waiting until it is ready..."
    else
      comp_launch "$c"
    fi
    launched[$c]=1
  done
  for c in "$@"; do
    [[ -n ${launched[$c]:-} ]] || continue
    t0=$(now_us)
    deadline=$((SECONDS + KUBE_TIMEOUT))
    note=$((SECONDS + 15))
    until comp_ready "$c"; do
      if [[ -z $(comp_pid "$c") ]]; then
        printf '%s: exited during startup (after %s)\n' "$c" "$(fmt_elapsed "$t0")" >&2
        show_log_tail "$(comp_log "$c")" 40
        die "kube: start failed: $c"
      fi
      if ((SECONDS >= deadline)); then
        printf '%s: not ready after %s s (KUBE_TIMEOUT)\n' "$c" "$KUBE_TIMEOUT" >&2
        show_log_tail "$(comp_log "$c")" 40
        die "kube: start failed: $c"
      fi
      if ((SECONDS >= note)); then
        info "$c" "still waiting ($(fmt_elapsed "$t0"))..."
        note=$((SECONDS + 15))
      fi
      sleep 0.3
    done
    info "$c" "ready on $(comp_addr "$c") ($(fmt_elapsed "$t0"))"
  done
}

stop_component() {
  local c=$1 pid
  pid=$(comp_pid "$c")
  if [[ -n $pid ]]; then
    info "$c" "stopping (pid $pid)..."
    stop_pid "$c" "$pid" "$SERVICES_STOP_TIMEOUT"
  fi
  rm -f "$(comp_pidfile "$c")"
}

# ---------------------------------------------------------------------------
# Host set-up: checks, kernel settings, the bridge
# ---------------------------------------------------------------------------
preflight() {
  [[ $EUID -eq 0 ]] || die "kube: needs root (containerd, the kubelet and the pod network change the host)"
  [[ -d /sys/fs/cgroup/memory || -f /sys/fs/cgroup/cgroup.controllers ]] ||
    die "kube: no memory cgroup controller at /sys/fs/cgroup: the kubelet cannot run here"
  if ((${#CONTAINERD_SOCK} > 100)); then
    die "kube: the containerd socket path $CONTAINERD_SOCK is too long for a unix socket: use a shorter IOT_STATE_DIR"
  fi
  # shellcheck disable=SC2046 # a word list
  apt_install $(kube_packages)
  [[ -x $CNI_BIN_DIR/bridge ]] || die "kube: no CNI bridge plugin in $CNI_BIN_DIR (containernetworking-plugins)"
  local s
  for s in net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables; do
    if [[ $(sysctl -n "$s" 2>/dev/null) != 1 ]]; then
      sysctl -qw "$s=1" || die "kube: cannot set $s=1 (pods and Services need it)"
      info kube "set $s=1"
    fi
  done
}

# The pod bridge, with the node address as its gateway (before anything binds to that address).
setup_network() {
  local prefix=${KUBE_NODE_POD_SUBNET#*/}
  if ! ip link show "$KUBE_BRIDGE" >/dev/null 2>&1; then
    ip link add "$KUBE_BRIDGE" type bridge
    info kube "created bridge $KUBE_BRIDGE ($KUBE_NODE_IP/$prefix)"
  fi
  ip addr replace "$KUBE_NODE_IP/$prefix" dev "$KUBE_BRIDGE"
  ip link set "$KUBE_BRIDGE" up
}

# delete_jumps IPT TABLE PARENT CHAIN: remove PARENT's rules that jump to CHAIN.
delete_jumps() {
  local ipt=$1 table=$2 parent=$3 chain=$4 rule i
  for ((i = 0; i < 20; i++)); do
    rule=$("$ipt" -w -t "$table" -S "$parent" 2>/dev/null | grep -m1 -E -- "-j $chain( |\$)") || return 0
    # xargs undoes the quoting of -S output (comments with spaces).
    printf '%s\n' "${rule/#-A /-D }" | xargs "$ipt" -w -t "$table" || return 0
  done
}

# chain_empty IPT TABLE CHAIN [IGNORED_RULE_RE]: the chain exists and has no rules (but those).
chain_empty() {
  local rules
  rules=$("$1" -w -t "$2" -S "$3" 2>/dev/null) || return 1
  ! printf '%s\n' "$rules" | grep '^-A ' | grep -Evq -- "${4:-^\$}"
}

drop_chain() { # IPT TABLE CHAIN
  "$1" -w -t "$2" -F "$3" 2>/dev/null || true
  "$1" -w -t "$2" -X "$3" 2>/dev/null || true
}

# The chains that the CNI firewall and portmap plugins share between networks, once no pod uses
# them (the pods' own rules and chains go with the pods); the kubelet's chains.
cleanup_cni_chains() {
  local ipt table chain
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null 2>&1 || continue
    if "$ipt" -w -S CNI-FORWARD >/dev/null 2>&1 && chain_empty "$ipt" filter CNI-FORWARD '-j CNI-ADMIN$' &&
      chain_empty "$ipt" filter CNI-ADMIN; then
      delete_jumps "$ipt" filter FORWARD CNI-FORWARD
      drop_chain "$ipt" filter CNI-FORWARD
      drop_chain "$ipt" filter CNI-ADMIN
    fi
    if chain_empty "$ipt" nat CNI-HOSTPORT-DNAT; then
      delete_jumps "$ipt" nat PREROUTING CNI-HOSTPORT-DNAT
      delete_jumps "$ipt" nat OUTPUT CNI-HOSTPORT-DNAT
      delete_jumps "$ipt" nat POSTROUTING CNI-HOSTPORT-MASQ
      drop_chain "$ipt" nat CNI-HOSTPORT-DNAT
      drop_chain "$ipt" nat CNI-HOSTPORT-MASQ
      drop_chain "$ipt" nat CNI-HOSTPORT-SETMARK
    fi
    # The kubelet's own: a localnet firewall, a hint for kube-proxy, canaries.
    if "$ipt" -w -S KUBE-FIREWALL >/dev/null 2>&1; then
      delete_jumps "$ipt" filter INPUT KUBE-FIREWALL
      delete_jumps "$ipt" filter OUTPUT KUBE-FIREWALL
      drop_chain "$ipt" filter KUBE-FIREWALL
    fi
    for table in mangle nat filter; do
      for chain in KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
        if "$ipt" -w -t "$table" -S "$chain" >/dev/null 2>&1; then
          drop_chain "$ipt" "$table" "$chain"
        fi
      done
    done
  done
}

# kube-router's rules, once it is stopped: the jumps from INPUT, FORWARD and OUTPUT, its chains
# (KUBE-ROUTER-*, a KUBE-POD-FW-* per pod, a KUBE-NWPLCY-* per policy) and its ipsets.
cleanup_kube_router() {
  local parent chains c sets s
  for parent in INPUT FORWARD OUTPUT; do delete_jumps iptables filter "$parent" "KUBE-ROUTER-$parent"; done
  chains=$(iptables -w -S 2>/dev/null | sed -n 's/^-N \(KUBE-ROUTER-.*\|KUBE-POD-FW-.*\|KUBE-NWPLCY-.*\)$/\1/p')
  [[ -n $chains ]] || return 0
  for c in $chains; do iptables -w -F "$c" 2>/dev/null || true; done
  for c in $chains; do iptables -w -X "$c" 2>/dev/null || true; done
  sets=$(ipset list -n 2>/dev/null | grep -E '^KUBE-(SRC|DST)-') || sets=
  for s in $sets; do ipset destroy "$s" 2>/dev/null || true; done
  info kube-router "removed its iptables chains and ipsets"
}

teardown_network() {
  if ip link show "$KUBE_BRIDGE" >/dev/null 2>&1; then
    ip link del "$KUBE_BRIDGE"
    info kube "removed bridge $KUBE_BRIDGE"
  fi
  cleanup_cni_chains
  conntrack -D -s "$KUBE_POD_CIDR" >/dev/null 2>&1 || true
  conntrack -D -d "$KUBE_SERVICE_CIDR" >/dev/null 2>&1 || true
}

# ---------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------
# import_image TAR [NAME]: into containerd's k8s.io namespace (where the kubelet's images live),
# skipped when this very tarball was imported already and the image is still there.
import_image() {
  local tar=$1 name=${2:-} sum mark out
  sum=$(sha256sum "$tar" | cut -c1-64)
  mark="$KUBE_DIR/containerd/imported-$(basename "$tar").sha256"
  if [[ -n $name && $(cat "$mark" 2>/dev/null) == "$sum" ]] && ctr_ images ls -q 2>/dev/null | grep -qxF "$name"; then
    return 0
  fi
  out=$(ctr_ images import "$tar" 2>&1) || {
    printf '%s\n' "$out" >&2
    die "kube: ctr images import $tar failed"
  }
  echo "$sum" >"$mark"
  printf '%s\n' "$out" | sed -n 's/^unpacking \([^ ]*\) .*/\1/p' | while read -r n; do info images "loaded $n"; done
}

# import_docker_image REF: stream an image of the local Docker engine into the node, unless the
# node has that very image (same image ID) already. Fails if Docker has no such image.
import_docker_image() {
  local ref=$1 id have out
  id=$(docker image inspect -f '{{.Id}}' "$ref" 2>/dev/null) || return 1
  have=$(crictl_ inspecti -o go-template --template '{{.status.id}}' "$ref" 2>/dev/null | tail -n 1) || have=
  if [[ $have == "$id" ]]; then
    info images "$ref: current (${id:7:12})"
    return 0
  fi
  out=$(docker save "$ref" | ctr_ images import - 2>&1) || {
    printf '%s\n' "$out" >&2
    die "kube: docker save $ref | ctr images import - failed"
  }
  info images "loaded $ref (${id:7:12}) from the Docker engine"
}

# At start: the images `make images` built (named in .local/images.env), from the Docker engine.
load_docker_images() {
  local env="$IOT_STATE_DIR/images.env" ref
  [[ ${KUBE_LOAD_DOCKER_IMAGES:-1} == 1 && -s $env ]] || return 0
  command -v docker >/dev/null 2>&1 || return 0
  if ! timeout 10 docker info >/dev/null 2>&1; then
    info images "the Docker engine is not running, so the images of make images are not loaded (scripts/docker start, then scripts/kube load-images IMAGE...)"
    return 0
  fi
  while read -r ref; do
    import_docker_image "$ref" || warn images "$ref (from $env) is not in the Docker engine"
  done < <(sed -n 's/^IOT_[A-Z0-9_]*_IMAGE=//p' "$env")
}

import_local_images() {
  import_image "$KUBE_IMAGES/pause.tar" "$KUBE_PAUSE_IMAGE"
  import_image "$KUBE_IMAGES/busybox.tar" "$KUBE_BUSYBOX_IMAGE"
  import_image "$KUBE_IMAGES/coredns.tar" "$KUBE_COREDNS_IMAGE"
}

# ---------------------------------------------------------------------------
# Pods, at stop: every pod sandbox is stopped and removed through the CRI, so the CNI plugins
# release its address, veth, masquerade and firewall rules; then leftover shims.
# ---------------------------------------------------------------------------
remove_all_pods() {
  local n
  comp_ready containerd || return 0
  n=$(crictl_ pods -q 2>/dev/null | wc -l)
  if ((n > 0)); then
    info containerd "stopping and removing $n pod sandbox(es)..."
    # shellcheck disable=SC2046 # pod ids
    crictl_ stopp $(crictl_ pods -q) >/dev/null 2>&1 || true
    crictl_ rmp -a -f >/dev/null 2>&1 || warn containerd "crictl rmp -a -f failed"
  fi
}

stop_shims() {
  local p pid cmd
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
    if [[ $cmd == *containerd-shim* && $cmd == *"$CONTAINERD_SOCK"* ]]; then
      stop_pid containerd-shim "$pid" 10 >/dev/null
    fi
  done
}

# The kubelet's cgroups (/kubepods/...), once empty, in every v1 hierarchy (or the v2 tree).
remove_pod_cgroups() {
  local d
  for d in /sys/fs/cgroup/kubepods /sys/fs/cgroup/*/kubepods; do
    [[ -d $d ]] || continue
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

# node_ready [SINCE]: the node's Ready condition is True (and was reported at or after SINCE, an
# RFC 3339 UTC time: a restarted kubelet's node keeps the old run's status until it reports).
node_ready() {
  local out
  out=$(kubectl_ get node "$KUBE_NODE_NAME" \
    -o jsonpath='{range .status.conditions[?(@.type=="Ready")]}{.status} {.lastHeartbeatTime}{end}' 2>/dev/null) || return 1
  [[ ${out%% *} == True ]] || return 1
  [[ -z ${1:-} || ! ${out#* } < $1 ]]
}

wait_node_ready() { # [SINCE]
  local t0 deadline note since=${1:-}
  t0=$(now_us)
  deadline=$((SECONDS + KUBE_TIMEOUT))
  note=$((SECONDS + 15))
  until node_ready "$since"; do
    if ((SECONDS >= deadline)); then
      kubectl_ describe node "$KUBE_NODE_NAME" 2>&1 | sed -n '/^Conditions:/,/^Addresses:/p' >&2 || true
      show_log_tail "$(comp_log kubelet)" 40
      die "kube: node $KUBE_NODE_NAME not Ready after $KUBE_TIMEOUT s"
    fi
    if ((SECONDS >= note)); then
      info node "waiting for $KUBE_NODE_NAME to be Ready ($(fmt_elapsed "$t0"))..."
      note=$((SECONDS + 15))
    fi
    sleep 0.5
  done
  info node "$KUBE_NODE_NAME Ready ($(fmt_elapsed "$t0"))"
}
