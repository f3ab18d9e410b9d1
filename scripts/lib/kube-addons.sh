# shellcheck shell=bash
# scripts/kube: the cluster add-ons (CoreDNS, from the locally built image) and the smoke test.
# Sourced by scripts/kube after lib/kube.sh and lib/kube-run.sh.

coredns_manifest() {
  cat <<EOF
apiVersion: v1
kind: ServiceAccount
metadata:
  name: coredns
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:coredns
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:coredns
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:coredns
subjects:
- kind: ServiceAccount
  name: coredns
  namespace: kube-system
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: coredns
  namespace: kube-system
data:
  Corefile: |
    .:53 {
        errors
        health {
            lameduck 5s
        }
        ready
        kubernetes $KUBE_CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 30
        }
        prometheus :9153
        forward . /etc/resolv.conf {
            max_concurrent 1000
        }
        cache 30
        loop
        reload
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels:
    k8s-app: kube-dns
spec:
  replicas: 1
  selector:
    matchLabels:
      k8s-app: kube-dns
  template:
    metadata:
      labels:
        k8s-app: kube-dns
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      dnsPolicy: Default
      containers:
      - name: coredns
        image: $KUBE_COREDNS_IMAGE
        imagePullPolicy: Never
        args: ["-conf", "/etc/coredns/Corefile"]
        resources:
          requests:
            cpu: 50m
            memory: 70Mi
          limits:
            memory: 170Mi
        ports:
        - {name: dns, containerPort: 53, protocol: UDP}
        - {name: dns-tcp, containerPort: 53, protocol: TCP}
        - {name: metrics, containerPort: 9153, protocol: TCP}
        securityContext:
          allowPrivilegeEscalation: false
          capabilities:
            add: [NET_BIND_SERVICE]
            drop: [ALL]
          readOnlyRootFilesystem: true
        livenessProbe:
          httpGet: {path: /health, port: 8080}
          initialDelaySeconds: 10
          periodSeconds: 10
        readinessProbe:
          httpGet: {path: /ready, port: 8181}
          periodSeconds: 2
        volumeMounts:
        - {name: config, mountPath: /etc/coredns, readOnly: true}
      volumes:
      - name: config
        configMap:
          name: coredns
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels:
    k8s-app: kube-dns
    kubernetes.io/name: CoreDNS
spec:
  selector:
    k8s-app: kube-dns
  clusterIP: $KUBE_DNS_IP
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
  - {name: metrics, port: 9153, protocol: TCP}
EOF
}

# What kube-router's firewall reads (its own client certificate: user system:kube-router).
kube_router_rbac() {
  cat <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:kube-router
rules:
- apiGroups: [""]
  resources: [namespaces, pods, services, nodes, endpoints]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:kube-router
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:kube-router
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: system:kube-router
EOF
}

# The NetworkPolicy engine, once the node exists (kube-router reads its Node object at start):
# its RBAC, then the process; rules that a killed run left behind are removed first, so that
# its readiness (its chains hooked into FORWARD) is this run's.
start_kube_router() {
  local out
  out=$(kube_router_rbac | kubectl_ apply -f - 2>&1) || {
    printf '%s\n' "$out" >&2
    die "kube: applying kube-router's RBAC failed"
  }
  [[ -n $(comp_pid kube-router) ]] || cleanup_kube_router
  start_group kube-router
}

apply_addons() {
  local t0 out deadline
  t0=$(now_us)
  out=$(coredns_manifest | kubectl_ apply -f - 2>&1) || {
    printf '%s\n' "$out" >&2
    die "kube: applying CoreDNS failed"
  }
  # Ready = it answers, through the kube-dns Service (so kube-proxy's rules are in place too): a
  # deployment's status and a pod's Ready condition stay True from the last run for a while.
  deadline=$((SECONDS + KUBE_TIMEOUT))
  until dns_answers; do
    if ((SECONDS >= deadline)); then
      kubectl_ -n kube-system get pods -o wide >&2 || true
      kubectl_ -n kube-system describe pods -l k8s-app=kube-dns 2>&1 | tail -n 20 >&2 || true
      die "kube: CoreDNS does not answer on $KUBE_DNS_IP after $KUBE_TIMEOUT s"
    fi
    sleep 0.5
  done
  info coredns "answers on $KUBE_DNS_IP:53 ($(fmt_elapsed "$t0"))"
}

# dns_answers: the cluster DNS resolves the API server's Service name to its address.
dns_answers() {
  timeout 3 busybox nslookup "kubernetes.default.svc.$KUBE_CLUSTER_DOMAIN" "$KUBE_DNS_IP" 2>/dev/null |
    grep -q "^Address: $KUBE_API_SERVICE_IP\$"
}

# The smoke test: in a throwaway namespace, a busybox web server behind a Service, and a pod that
# runs to completion after finding the Service by DNS name and fetching a page through kube-proxy.
cmd_smoke() {
  local ns=kube-smoke t0 phase token deadline
  node_ready || die "kube: the cluster is not running or the node is not Ready: scripts/kube start"
  t0=$(now_us)
  token="smoke-$RANDOM$RANDOM"
  kubectl_ delete namespace "$ns" --ignore-not-found --wait=true >/dev/null
  kubectl_ apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: $ns
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: $ns
  labels: {app: web}
spec:
  containers:
  - name: httpd
    image: $KUBE_BUSYBOX_IMAGE
    imagePullPolicy: Never
    command: ["sh", "-c", "mkdir -p /tmp/www && echo $token > /tmp/www/index.html && exec httpd -f -v -p 8080 -h /tmp/www"]
    ports: [{containerPort: 8080}]
    readinessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: $ns
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: $ns
spec:
  restartPolicy: Never
  containers:
  - name: client
    image: $KUBE_BUSYBOX_IMAGE
    imagePullPolicy: Never
    command:
    - sh
    - -c
    - |
      set -e
      echo "pod \$(hostname) at \$(ip -4 -o addr show eth0 | awk '{print \$4}')"
      # Debian's static busybox: nslookup has its own resolver, wget's getaddrinfo would need
      # glibc's NSS modules, so wget gets the address nslookup found (and its -T segfaults: timeout).
      nslookup web.$ns.svc.$KUBE_CLUSTER_DOMAIN | tee /tmp/ns
      ip=\$(awk '/^Name:/ {n = 1} n && /^Address/ {print \$NF; exit}' /tmp/ns)
      test -n "\$ip"
      for i in \$(seq 1 30); do
        if body=\$(timeout 5 wget -q -O - "http://\$ip/"); then break; fi
        sleep 1
      done
      echo "GET http://\$ip/ (Service web): \$body"
      test "\$body" = "$token"
EOF
  deadline=$((SECONDS + KUBE_TIMEOUT))
  while :; do
    phase=$(kubectl_ -n "$ns" get pod client -o jsonpath='{.status.phase}' 2>/dev/null || true)
    [[ $phase == Succeeded || $phase == Failed ]] && break
    if ((SECONDS >= deadline)); then
      kubectl_ -n "$ns" get pods -o wide >&2 || true
      kubectl_ -n "$ns" describe pod client 2>&1 | tail -n 20 >&2 || true
      die "kube: smoke: the client pod did not finish in $KUBE_TIMEOUT s (phase ${phase:-?})"
    fi
    sleep 0.5
  done
  kubectl_ -n "$ns" logs client | sed 's/^/  | /'
  if [[ $phase != Succeeded ]]; then
    kubectl_ -n "$ns" get pods -o wide >&2 || true
    die "kube: smoke: FAILED (client pod $phase; namespace $ns kept for a look)"
  fi
  kubectl_ delete namespace "$ns" --wait=false >/dev/null
  say "kube: smoke: passed: a pod resolved a Service by DNS and fetched from it through kube-proxy ($(fmt_elapsed "$t0"))"
}

# ---------------------------------------------------------------------------
# Backing services for the hub chart, in the cluster: single-replica Kafka (KRaft), PostgreSQL and
# Redis from the images `make images` builds (IOT_*_IMAGE, as in .local/images.env), data in
# emptyDir (kept over a cluster restart, lost with the pod). For trying the chart, not production.
# ---------------------------------------------------------------------------
KUBE_DEPS_NS="${KUBE_DEPS_NS:-iot-deps}"

deps_images() {
  local env="$IOT_STATE_DIR/images.env"
  KAFKA_IMAGE=${IOT_KAFKA_IMAGE:-$(sed -n 's/^IOT_KAFKA_IMAGE=//p' "$env" 2>/dev/null)}
  POSTGRES_IMAGE=${IOT_POSTGRES_IMAGE:-$(sed -n 's/^IOT_POSTGRES_IMAGE=//p' "$env" 2>/dev/null)}
  REDIS_IMAGE=${IOT_REDIS_IMAGE:-$(sed -n 's/^IOT_REDIS_IMAGE=//p' "$env" 2>/dev/null)}
  KAFKA_IMAGE=${KAFKA_IMAGE:-iot-monitoring/kafka:4.0.1}
  POSTGRES_IMAGE=${POSTGRES_IMAGE:-iot-monitoring/postgres:15}
  REDIS_IMAGE=${REDIS_IMAGE:-iot-monitoring/redis:7}
}

deps_manifest() {
  local ns=$KUBE_DEPS_NS
  cat <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $ns}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: kafka, namespace: $ns}
spec:
  replicas: 1
  strategy: {type: Recreate}
  selector: {matchLabels: {app: kafka}}
  template:
    metadata: {labels: {app: kafka}}
    spec:
      enableServiceLinks: false
      containers:
      - name: kafka
        image: $KAFKA_IMAGE
        imagePullPolicy: IfNotPresent
        env:
        - {name: KAFKA_NODE_ID, value: "1"}
        - {name: KAFKA_PROCESS_ROLES, value: "broker,controller"}
        - {name: CLUSTER_ID, value: 6mspr_lnQWCkIIQhS3fvAg}
        - {name: KAFKA_CONTROLLER_QUORUM_VOTERS, value: "1@localhost:9093"}
        - {name: KAFKA_CONTROLLER_LISTENER_NAMES, value: CONTROLLER}
        - {name: KAFKA_LISTENERS, value: "PLAINTEXT://:9092,CONTROLLER://:9093"}
        - {name: KAFKA_ADVERTISED_LISTENERS, value: "PLAINTEXT://kafka.$ns.svc.$KUBE_CLUSTER_DOMAIN:9092"}
        - {name: KAFKA_LISTENER_SECURITY_PROTOCOL_MAP, value: "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"}
        - {name: KAFKA_LOG_DIRS, value: /var/lib/kafka/data}
        - {name: KAFKA_NUM_PARTITIONS, value: "6"}
        - {name: KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR, value: "1"}
        - {name: KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR, value: "1"}
        - {name: KAFKA_TRANSACTION_STATE_LOG_MIN_ISR, value: "1"}
        - {name: KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS, value: "0"}
        - {name: KAFKA_HEAP_OPTS, value: "-Xms256m -Xmx512m"}
        ports: [{containerPort: 9092}]
        readinessProbe: {tcpSocket: {port: 9092}, periodSeconds: 3}
        volumeMounts: [{name: data, mountPath: /var/lib/kafka/data}]
      volumes: [{name: data, emptyDir: {}}]
---
apiVersion: v1
kind: Service
metadata: {name: kafka, namespace: $ns}
spec:
  selector: {app: kafka}
  ports: [{port: 9092}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: postgres, namespace: $ns}
spec:
  replicas: 1
  strategy: {type: Recreate}
  selector: {matchLabels: {app: postgres}}
  template:
    metadata: {labels: {app: postgres}}
    spec:
      enableServiceLinks: false
      containers:
      - name: postgres
        image: $POSTGRES_IMAGE
        imagePullPolicy: IfNotPresent
        env:
        - {name: POSTGRES_USER, value: iot}
        - {name: POSTGRES_DB, value: iot}
        - {name: POSTGRES_PASSWORD, value: iot}
        ports: [{containerPort: 5432}]
        readinessProbe: {exec: {command: [pg_isready, -U, iot, -d, iot, -h, 127.0.0.1]}, periodSeconds: 3}
        volumeMounts: [{name: data, mountPath: /var/lib/postgresql/data}]
      volumes: [{name: data, emptyDir: {}}]
---
apiVersion: v1
kind: Service
metadata: {name: postgres, namespace: $ns}
spec:
  selector: {app: postgres}
  ports: [{port: 5432}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: redis, namespace: $ns}
spec:
  replicas: 1
  strategy: {type: Recreate}
  selector: {matchLabels: {app: redis}}
  template:
    metadata: {labels: {app: redis}}
    spec:
      enableServiceLinks: false
      containers:
      - name: redis
        image: $REDIS_IMAGE
        imagePullPolicy: IfNotPresent
        ports: [{containerPort: 6379}]
        readinessProbe: {exec: {command: [redis-cli, ping]}, periodSeconds: 3}
---
apiVersion: v1
kind: Service
metadata: {name: redis, namespace: $ns}
spec:
  selector: {app: redis}
  ports: [{port: 6379}]
EOF
}

cmd_deps() {
  local t0 svc="svc.$KUBE_CLUSTER_DOMAIN"
  node_ready || die "kube: the cluster is not running or the node is not Ready: scripts/kube start"
  if [[ ${1:-} == down ]]; then
    kubectl_ delete namespace "$KUBE_DEPS_NS" --ignore-not-found
    return
  fi
  [[ $# -eq 0 ]] || die "Usage: scripts/kube deps [down]"
  deps_images
  t0=$(now_us)
  deps_manifest | kubectl_ apply -f - >/dev/null
  if ! kubectl_ -n "$KUBE_DEPS_NS" wait --for=condition=Available deployment --all --timeout "${KUBE_TIMEOUT}s" >/dev/null; then
    kubectl_ -n "$KUBE_DEPS_NS" get pods -o wide >&2 || true
    die "kube: deps not ready after $KUBE_TIMEOUT s (images loaded? scripts/kube load-images $KAFKA_IMAGE $POSTGRES_IMAGE $REDIS_IMAGE)"
  fi
  say "kube: deps ready in namespace $KUBE_DEPS_NS ($(fmt_elapsed "$t0")); the hub chart's values:"
  say "  --set kafka.bootstrap=kafka.$KUBE_DEPS_NS.$svc:9092"
  say "  --set database.url=postgresql://iot:iot@postgres.$KUBE_DEPS_NS.$svc:5432/iot"
  say "  --set redis.url=redis://redis.$KUBE_DEPS_NS.$svc:6379/0"
}
