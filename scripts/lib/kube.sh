# shellcheck shell=bash
# scripts/kube: a single-node Kubernetes cluster on this machine, without Docker or a registry.
# Configuration, builds (Go module proxy), images, certificates and config files.
# Sourced by scripts/kube after lib/common.sh; the processes are in lib/kube-run.sh.

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------
K8S_VERSION="${K8S_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.0}"
CRICTL_VERSION="${CRICTL_VERSION:-v1.37.0}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.15.0}"
# The NetworkPolicy engine: kube-router's firewall only (no routing, no service proxy). v2.1.0 is
# the newest the Go module proxy serves here.
KUBE_ROUTER_VERSION="${KUBE_ROUTER_VERSION:-v2.1.0}"

KUBE_DIR="$IOT_STATE_DIR/kube"
KUBE_BIN="$KUBE_DIR/bin"
KUBE_PKI="$KUBE_DIR/pki"
KUBE_CONF="$KUBE_DIR/conf"
KUBE_RUN="$KUBE_DIR/run"
KUBE_IMAGES="$KUBE_DIR/images"
KUBECONFIG_FILE="$KUBE_DIR/kubeconfig"
KUBE_BUILD_MOD="$SCRIPTS_DIR/kube-build"
KUBE_BUILD_LOG="$LOG_DIR/kube-build.log"

# The node: its name, and its address (the gateway of the pod bridge, so it is local, is in the
# cluster's own range and is reachable from pods; the API server and the kubelet bind to it).
KUBE_NODE_NAME="${KUBE_NODE_NAME:-iot-kube}"
KUBE_BRIDGE="${KUBE_BRIDGE:-iotkube0}"
KUBE_POD_CIDR="${KUBE_POD_CIDR:-10.244.0.0/16}"
KUBE_NODE_POD_SUBNET="${KUBE_NODE_POD_SUBNET:-10.244.0.0/24}"
KUBE_NODE_IP="${KUBE_NODE_IP:-10.244.0.1}"
KUBE_SERVICE_CIDR="${KUBE_SERVICE_CIDR:-10.96.0.0/16}"
KUBE_API_SERVICE_IP="${KUBE_API_SERVICE_IP:-10.96.0.1}"
KUBE_DNS_IP="${KUBE_DNS_IP:-10.96.0.10}"
KUBE_CLUSTER_DOMAIN="${KUBE_CLUSTER_DOMAIN:-cluster.local}"
KUBE_API_PORT="${KUBE_API_PORT:-6443}"
KUBE_ETCD_PORT="${KUBE_ETCD_PORT:-2379}"
KUBE_ETCD_PEER_PORT="${KUBE_ETCD_PEER_PORT:-2380}"
KUBE_TIMEOUT="${KUBE_TIMEOUT:-120}"
KUBE_API_URL="https://$KUBE_NODE_IP:$KUBE_API_PORT"

# Locally built images (no registry is reachable): the pod sandbox, a busybox for tests, CoreDNS.
KUBE_PAUSE_IMAGE=docker.io/iot-monitoring/pause:local
KUBE_BUSYBOX_IMAGE=docker.io/iot-monitoring/busybox:local
KUBE_COREDNS_IMAGE=docker.io/iot-monitoring/coredns:local

CONTAINERD_SOCK="$KUBE_RUN/containerd.sock"
# shellcheck disable=SC2034 # used by lib/kube-run.sh
KUBE_ROUTER_CHAIN=KUBE-ROUTER-FORWARD
CNI_BIN_DIR="${CNI_BIN_DIR:-/usr/lib/cni}"

# Start order; stop goes the other way.
# shellcheck disable=SC2034 # used by scripts/kube
KUBE_COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy kube-router)
KUBE_K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

for _v in KUBE_API_PORT KUBE_ETCD_PORT KUBE_ETCD_PEER_PORT KUBE_TIMEOUT; do
  if [[ ! ${!_v} =~ ^[0-9]+$ ]]; then
    printf 'kube: %s must be a number, got %q\n' "$_v" "${!_v}" >&2
    exit 2
  fi
done
unset _v

kubectl_() { "$KUBE_BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }
ctr_() { ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }
crictl_() { "$KUBE_BIN/crictl" --config "$KUBE_CONF/crictl.yaml" "$@"; }

kube_packages() { echo containerd runc containernetworking-plugins conntrack iptables ipset iproute2 socat busybox-static jq openssl curl; }

# ---------------------------------------------------------------------------
# Builds: Kubernetes and etcd (the module in scripts/kube-build), crictl, CoreDNS, kube-router,
# pause.
# ---------------------------------------------------------------------------
find_go() {
  local g
  for g in "$(command -v go 2>/dev/null || true)" /usr/local/go/bin/go; do
    if [[ -n $g && -x $g ]]; then
      echo "$g"
      return 0
    fi
  done
  return 1
}

# run_build WHAT CMD...: the build's output goes to the log, a progress line every 30 s, the
# log's tail on failure.
run_build() {
  local what=$1 pid rc=0 start=$SECONDS next=$((SECONDS + 30))
  shift
  printf '\n--- %s: %s\n' "$(date -u +%FT%TZ)" "$*" >>"$KUBE_BUILD_LOG"
  "$@" >>"$KUBE_BUILD_LOG" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= next)); then
      say "kube: $what: still building ($((SECONDS - start)) s)..."
      next=$((SECONDS + 30))
    fi
    sleep 1
  done
  wait "$pid" || rc=$?
  if ((rc != 0)); then
    show_log_tail "$KUBE_BUILD_LOG" 30
    die "kube: building $what failed (exit $rc; full log: $KUBE_BUILD_LOG)"
  fi
}

# What a build step's result must match: the pinned version and, for the module build, the
# recipe's files (editing go.mod or pause/main.go rebuilds).
build_stamp() {
  case $1 in
  kubernetes) printf 'kubernetes %s etcd %s %s' "$K8S_VERSION" "$ETCD_VERSION" \
    "$(cat "$KUBE_BUILD_MOD/go.mod" "$KUBE_BUILD_MOD/go.sum" | sha256sum | cut -c1-16)" ;;
  crictl) printf 'crictl %s' "$CRICTL_VERSION" ;;
  coredns) printf 'coredns %s' "$COREDNS_VERSION" ;;
  kuberouter) printf 'kube-router %s' "$KUBE_ROUTER_VERSION" ;;
  # The recipe of the images is these two functions (not the whole file, which other builds share).
  images) printf 'images %s' "$({ cat "$KUBE_BUILD_MOD/pause/main.go" /bin/busybox 2>/dev/null; declare -f build_images image_tar; } | sha256sum | cut -c1-16)" ;;
  esac
}
build_outputs() {
  case $1 in
  kubernetes) printf "$KUBE_BIN/%s\n" etcd "${KUBE_K8S_CMDS[@]}" ;;
  crictl) echo "$KUBE_BIN/crictl" ;;
  coredns) echo "$KUBE_BIN/coredns" ;;
  kuberouter) echo "$KUBE_BIN/kube-router" ;;
  images) printf "$KUBE_IMAGES/%s.tar\n" pause busybox coredns ;;
  esac
}
build_current() {
  local f
  [[ $(cat "$KUBE_BIN/.$1.stamp" 2>/dev/null) == "$(build_stamp "$1")" ]] || return 1
  while read -r f; do [[ -s $f ]] || return 1; done < <(build_outputs "$1")
}

k8s_ldflags() {
  local p flags="-s -w" minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    flags+=" -X $p.gitTreeState=clean -X $p.buildDate=$(date -u +%FT%TZ)"
  done
  echo "$flags"
}

build_kubernetes() {
  local pkgs=() c
  for c in "${KUBE_K8S_CMDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  cd "$KUBE_BUILD_MOD" || return
  # -mod=mod: go.sum is committed; a missing entry is fetched rather than failing the build.
  CGO_ENABLED=0 "$GO" build -mod=mod -trimpath -ldflags "$(k8s_ldflags)" -o "$KUBE_BIN/" "${pkgs[@]}"
  CGO_ENABLED=0 "$GO" build -mod=mod -trimpath -ldflags "-s -w" -o "$KUBE_BIN/etcd" go.etcd.io/etcd/server/v3
}
build_crictl() {
  GOBIN="$KUBE_BIN" CGO_ENABLED=0 "$GO" install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
    "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
}
build_coredns() {
  # CoreDNS's own module has no replace directives, so `go install` works.
  GOBIN="$KUBE_BIN" CGO_ENABLED=0 "$GO" install -trimpath -ldflags "-s -w" \
    "github.com/coredns/coredns@$COREDNS_VERSION"
}
build_kuberouter() {
  GOBIN="$KUBE_BIN" CGO_ENABLED=0 "$GO" install -trimpath \
    -ldflags "-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION" \
    "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION"
}
build_images() {
  local root="$KUBE_IMAGES/rootfs" a
  mkdir -p "$KUBE_IMAGES"
  rm -rf "$root"
  # pause: one static binary.
  mkdir -p "$root/pause"
  (cd "$KUBE_BUILD_MOD" && CGO_ENABLED=0 "$GO" build -mod=mod -trimpath -ldflags "-s -w" -o "$root/pause/pause" ./pause)
  image_tar "$KUBE_PAUSE_IMAGE" "$root/pause" "$KUBE_IMAGES/pause.tar" '{"Entrypoint":["/pause"]}'
  # busybox: Debian's static busybox with its applets as links, for test pods.
  mkdir -p "$root/busybox/bin" "$root/busybox/tmp" "$root/busybox/etc"
  chmod 1777 "$root/busybox/tmp"
  cp /bin/busybox "$root/busybox/bin/busybox"
  for a in $(/bin/busybox --list); do
    [[ $a == busybox ]] || ln -sf busybox "$root/busybox/bin/$a"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/busybox/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/busybox/etc/group"
  image_tar "$KUBE_BUSYBOX_IMAGE" "$root/busybox" "$KUBE_IMAGES/busybox.tar" \
    '{"Cmd":["sh"],"Env":["PATH=/bin"]}'
  # CoreDNS: the binary built above.
  mkdir -p "$root/coredns/etc/coredns"
  cp "$KUBE_BIN/coredns" "$root/coredns/coredns"
  image_tar "$KUBE_COREDNS_IMAGE" "$root/coredns" "$KUBE_IMAGES/coredns.tar" \
    '{"Entrypoint":["/coredns"],"ExposedPorts":{"53/udp":{},"53/tcp":{},"9153/tcp":{}}}'
  rm -rf "$root"
}

# image_tar REF ROOTFS OUT CONFIG: a one-layer image in `docker save` format (what
# `ctr images import` and the other engineer's `docker save` tarballs share).
image_tar() {
  local ref=$1 rootfs=$2 out=$3 config=$4 work diff cfg
  work=$(mktemp -d "$KUBE_IMAGES/.tar.XXXXXX")
  tar -C "$rootfs" --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 -cf "$work/layer.tar" .
  diff=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
  mkdir "$work/$diff"
  mv "$work/layer.tar" "$work/$diff/layer.tar"
  jq -cn --arg diff "sha256:$diff" --argjson config "$config" --arg ref "$ref" '{
    architecture: "amd64", os: "linux", created: "1970-01-01T00:00:00Z",
    config: ({Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], WorkingDir: "/"} + $config),
    rootfs: {type: "layers", diff_ids: [$diff]},
    history: [{created: "1970-01-01T00:00:00Z", created_by: ("scripts/kube build: " + $ref)}]
  }' >"$work/config.json"
  cfg=$(sha256sum "$work/config.json" | cut -d' ' -f1)
  mv "$work/config.json" "$work/$cfg.json"
  jq -cn --arg cfg "$cfg.json" --arg layer "$diff/layer.tar" --arg ref "${ref#docker.io/}" \
    '[{Config: $cfg, RepoTags: [$ref], Layers: [$layer]}]' >"$work/manifest.json"
  tar -C "$work" --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 -cf "$out.partial" \
    manifest.json "$cfg.json" "$diff"
  mv -f "$out.partial" "$out"
  rm -rf "$work"
}

build_step() {
  local step=$1 t0 vvar
  vvar=${1^^}_VERSION
  if build_current "$step"; then
    return 0
  fi
  if [[ -z ${GO:-} ]]; then
    GO=$(find_go) || die "kube: go not found (on PATH or /usr/local/go/bin): install Go 1.26 or newer to build $step"
  fi
  t0=$(now_us)
  case $step in
  kubernetes) say "kube: building Kubernetes $K8S_VERSION (${KUBE_K8S_CMDS[*]}) and etcd $ETCD_VERSION with $("$GO" env GOVERSION) from the Go module proxy into $KUBE_BIN (first run: about 8 minutes on 2 cores; log: $KUBE_BUILD_LOG)..." ;;
  kuberouter) say "kube: building kube-router $KUBE_ROUTER_VERSION from the Go module proxy into $KUBE_BIN (first run: about 4 minutes; log: $KUBE_BUILD_LOG)..." ;;
  images) say "kube: building the local images (pause, busybox, coredns) into $KUBE_IMAGES..." ;;
  *) say "kube: building $step ${!vvar:-} from the Go module proxy into $KUBE_BIN (log: $KUBE_BUILD_LOG)..." ;;
  esac
  run_build "$step" "build_$step"
  build_stamp "$step" >"$KUBE_BIN/.$step.stamp"
  say "kube: $step ready ($(fmt_elapsed "$t0"))"
}

cmd_build() {
  local t0
  t0=$(now_us)
  ensure_state_dirs
  mkdir -p "$KUBE_BIN" "$KUBE_IMAGES"
  exec 7>"$KUBE_BIN/.build.lock"
  if ! flock -n 7; then
    say "kube: another build holds $KUBE_BIN/.build.lock, waiting..."
    flock -w 3600 7 || die "kube: timed out waiting for $KUBE_BIN/.build.lock"
  fi
  build_step kubernetes
  build_step crictl
  build_step coredns
  build_step kuberouter
  build_step images
  exec 7>&-
  say "kube: binaries and images are current ($(fmt_elapsed "$t0")): $("$KUBE_BIN/kubelet" --version), etcd $("$KUBE_BIN/etcd" --version | sed -n 's/^etcd Version: //p')"
}

# ---------------------------------------------------------------------------
# Certificates (openssl, ECDSA P-256): a cluster CA, a separate etcd CA, the service-account key.
# Made once; `scripts/kube reset` removes them with the rest of the cluster state.
# ---------------------------------------------------------------------------
pki_ca() { # NAME CN
  local n=$1
  [[ -s $KUBE_PKI/$n.crt && -s $KUBE_PKI/$n.key ]] && return 0
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$KUBE_PKI/$n.key" -out "$KUBE_PKI/$n.crt" -days 3650 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign" 2>/dev/null
}

pki_cert() { # NAME CA SUBJECT USAGE(server|client|both) [SANS]
  local n=$1 ca=$2 subj=$3 usage=$4 sans=${5:-} eku ext
  [[ -s $KUBE_PKI/$n.crt && -s $KUBE_PKI/$n.key ]] && return 0
  case $usage in
  server) eku=serverAuth ;;
  client) eku=clientAuth ;;
  both) eku=serverAuth,clientAuth ;;
  esac
  ext=$(printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\n' "$eku")
  if [[ -n $sans ]]; then ext+=$'\n'"subjectAltName=$sans"; fi
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$KUBE_PKI/$n.key" -out "$KUBE_PKI/$n.csr" -subj "$subj" 2>/dev/null
  openssl x509 -req -in "$KUBE_PKI/$n.csr" -CA "$KUBE_PKI/$ca.crt" -CAkey "$KUBE_PKI/$ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 3650 -out "$KUBE_PKI/$n.crt" \
    -extfile <(printf '%s\n' "$ext") 2>/dev/null
  rm -f "$KUBE_PKI/$n.csr"
}

make_pki() {
  local api_sans
  mkdir -p "$KUBE_PKI"
  chmod 700 "$KUBE_PKI"
  pki_ca ca iot-kube-ca
  pki_ca etcd-ca iot-kube-etcd-ca
  pki_cert etcd-server etcd-ca /CN=iot-kube-etcd both "IP:127.0.0.1,DNS:localhost"
  pki_cert apiserver-etcd-client etcd-ca /CN=kube-apiserver-etcd-client client
  api_sans="IP:$KUBE_NODE_IP,IP:$KUBE_API_SERVICE_IP,IP:127.0.0.1,DNS:localhost,DNS:$KUBE_NODE_NAME"
  api_sans+=",DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$KUBE_CLUSTER_DOMAIN"
  pki_cert apiserver ca /CN=kube-apiserver server "$api_sans"
  pki_cert apiserver-kubelet-client ca "/O=system:masters/CN=kube-apiserver-kubelet-client" client
  pki_cert admin ca "/O=system:masters/CN=iot-kube-admin" client
  pki_cert controller-manager ca /CN=system:kube-controller-manager client
  pki_cert scheduler ca /CN=system:kube-scheduler client
  pki_cert kube-proxy ca /CN=system:kube-proxy client
  pki_cert kube-router ca /CN=system:kube-router client
  pki_cert kubelet-client ca "/O=system:nodes/CN=system:node:$KUBE_NODE_NAME" client
  pki_cert kubelet-server ca "/CN=$KUBE_NODE_NAME" server "IP:$KUBE_NODE_IP,IP:127.0.0.1,DNS:$KUBE_NODE_NAME"
  if [[ ! -s $KUBE_PKI/sa.key ]]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$KUBE_PKI/sa.key" 2>/dev/null
    openssl pkey -in "$KUBE_PKI/sa.key" -pubout -out "$KUBE_PKI/sa.pub" 2>/dev/null
  fi
  chmod 600 "$KUBE_PKI"/*.key
}

# ---------------------------------------------------------------------------
# Config files (rewritten at every start, from the settings above)
# ---------------------------------------------------------------------------
write_kubeconfig() { # FILE USER CERTNAME
  local file=$1 user=$2 cert=$3
  umask 077
  cat >"$file.new" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: iot-kube
  cluster:
    server: $KUBE_API_URL
    certificate-authority-data: $(base64 -w0 "$KUBE_PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$KUBE_PKI/$cert.crt")
    client-key-data: $(base64 -w0 "$KUBE_PKI/$cert.key")
contexts:
- name: iot-kube
  context:
    cluster: iot-kube
    user: $user
current-context: iot-kube
EOF
  umask 022
  settle_file "$file"
}

# CAP_SYS_RESOURCE (bit 24) in our effective set: needed to lower an oom_score_adj.
have_sys_resource() {
  local eff
  eff=$(awk '/^CapEff:/ {print $2}' /proc/self/status)
  (((16#$eff >> 24) & 1))
}
kube_restrict_oom() { if have_sys_resource; then echo false; else echo true; fi; }
kube_oom_score() { if have_sys_resource; then echo "$1"; else cat /proc/self/oom_score_adj; fi; }

# settle_file FILE: FILE.new replaces FILE only if it differs, so a running component never sees
# its file rewritten (kube-proxy exits when its configuration file is written to).
settle_file() {
  local f=$1
  if [[ -f $f ]] && cmp -s "$f.new" "$f"; then
    rm -f "$f.new"
    return 0
  fi
  if [[ -f $f ]]; then CONFIG_CHANGED+=("$f"); fi
  mv -f "$f.new" "$f"
}

write_configs() {
  CONFIG_CHANGED=()
  mkdir -p "$KUBE_CONF" "$KUBE_RUN" "$KUBE_DIR/cni/net.d" "$KUBE_DIR/cni/ipam" \
    "$KUBE_DIR/containerd" "$KUBE_DIR/kubelet" "$KUBE_DIR/pod-logs" "$KUBE_DIR/etcd"
  chmod 700 "$KUBE_DIR/etcd"
  write_kubeconfig "$KUBECONFIG_FILE" iot-kube-admin admin
  write_kubeconfig "$KUBE_CONF/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
  write_kubeconfig "$KUBE_CONF/scheduler.kubeconfig" system:kube-scheduler scheduler
  write_kubeconfig "$KUBE_CONF/kubelet.kubeconfig" "system:node:$KUBE_NODE_NAME" kubelet-client
  write_kubeconfig "$KUBE_CONF/kube-proxy.kubeconfig" system:kube-proxy kube-proxy
  write_kubeconfig "$KUBE_CONF/kube-router.kubeconfig" system:kube-router kube-router

  printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 30\n' \
    "$CONTAINERD_SOCK" "$CONTAINERD_SOCK" >"$KUBE_CONF/crictl.yaml.new"

  # containerd (Debian's 1.6): its own root, state and socket; CRI with runc and cgroupfs (this
  # machine has cgroup v1 and no systemd); CNI from Debian's plugins and our conf dir.
  # restrict_oom_score_adj: without CAP_SYS_RESOURCE (a sandboxed root, as on this machine) runc
  # cannot lower a container's oom_score_adj below its own ("nsexec: failed to update
  # /proc/self/oom_score_adj: Permission denied", seen as "can't get final child's PID from pipe");
  # containerd then clamps the kubelet's values to its own, which is harmless on a dev machine.
  cat >"$KUBE_CONF/containerd.toml.new" <<EOF
version = 2
root = "$KUBE_DIR/containerd/root"
state = "$KUBE_DIR/containerd/state"

[grpc]
  address = "$CONTAINERD_SOCK"

[ttrpc]
  address = "$KUBE_RUN/containerd.ttrpc.sock"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$KUBE_DIR/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$KUBE_PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  restrict_oom_score_adj = $(kube_restrict_oom)
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$KUBE_DIR/cni/net.d"
    max_conf_num = 1
EOF

  # CNI: Debian's bridge plugin on our bridge (created by scripts/kube with the node address as
  # its gateway), host-local addresses, masquerade out; the firewall plugin lets pod traffic through
  # a FORWARD chain whose policy is DROP (Docker sets that); portmap for hostPort.
  cat >"$KUBE_DIR/cni/net.d/10-iot-kube.conflist.new" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "iot-kube",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$KUBE_BRIDGE",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$KUBE_DIR/cni/ipam",
        "ranges": [[{"subnet": "$KUBE_NODE_POD_SUBNET", "gateway": "$KUBE_NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "firewall", "backend": "iptables"},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF

  cat >"$KUBE_CONF/kubelet.yaml.new" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $KUBE_NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $KUBE_PKI/kubelet-server.crt
tlsPrivateKeyFile: $KUBE_PKI/kubelet-server.key
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $KUBE_PKI/ca.crt
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
imageServiceEndpoint: unix://$CONTAINERD_SOCK
# This machine: cgroup v1 (hybrid), no systemd as PID 1, no swap.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDNS:
- $KUBE_DNS_IP
clusterDomain: $KUBE_CLUSTER_DOMAIN
resolvConf: /etc/resolv.conf
podLogsDir: $KUBE_DIR/pod-logs
# A development disk: evict late, collect images late (the local images cannot be pulled again).
evictionHard:
  memory.available: 200Mi
  nodefs.available: 2%
  imagefs.available: 2%
imageGCHighThresholdPercent: 98
imageGCLowThresholdPercent: 95
rotateCertificates: false
serverTLSBootstrap: false
oomScoreAdj: $(kube_oom_score -999)
EOF

  cat >"$KUBE_CONF/kube-proxy.yaml.new" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $KUBE_CONF/kube-proxy.kubeconfig
mode: iptables
hostnameOverride: $KUBE_NODE_NAME
clusterCIDR: $KUBE_POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses:
- $KUBE_NODE_IP/32
oomScoreAdj: $(kube_oom_score -999)
conntrack:
  # Leave the host's nf_conntrack_max alone.
  maxPerCore: 0
EOF
  settle_file "$KUBE_CONF/crictl.yaml"
  settle_file "$KUBE_CONF/containerd.toml"
  settle_file "$KUBE_DIR/cni/net.d/10-iot-kube.conflist"
  settle_file "$KUBE_CONF/kubelet.yaml"
  settle_file "$KUBE_CONF/kube-proxy.yaml"
}
