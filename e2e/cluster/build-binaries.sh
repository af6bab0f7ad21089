#!/usr/bin/env bash
# Builds the local control plane from Go modules: kube-apiserver, kube-controller-manager,
# kube-scheduler and kubectl from k8s.io/kubernetes, etcd from go.etcd.io/etcd/server/v3, and
# kwok/kwokctl from sigs.k8s.io/kwok, and helm from helm.sh/helm/v4 (to render and validate the
# chart in charts/). Each build happens in its own throwaway wrapper module so that
# version selection in one cannot move another's dependencies. Binaries land in
#   ${STANCH_CACHE:-~/.cache/stanch}/bin/<component>-<version>/
# and a warm cache makes this script a no-op.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${STANCH_CACHE:-$HOME/.cache/stanch}
bindir="$cache/bin"
work="$cache/work"
mkdir -p "$bindir" "$work"
export CGO_ENABLED=0 GOFLAGS=-mod=mod

log() { printf '[cluster-binaries] %s\n' "$*" >&2; }

k8s_dir="$bindir/kubernetes-$K8S_VERSION"
etcd_dir="$bindir/etcd-$ETCD_VERSION"
kwok_dir="$bindir/kwok-$KWOK_VERSION"
helm_dir="$bindir/helm-$HELM_VERSION"

build_kubernetes() {
  local want=(kube-apiserver kube-controller-manager kube-scheduler kubectl) missing=0
  for b in "${want[@]}"; do [ -x "$k8s_dir/$b" ] || missing=1; done
  if [ "$missing" = 0 ]; then log "kubernetes $K8S_VERSION: cached"; return; fi
  log "kubernetes $K8S_VERSION: building (cold builds take tens of minutes on 2 cores)"
  local mod="$work/kubernetes-$K8S_VERSION" minor staging
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  staging="v0.${minor}.$(echo "$K8S_VERSION" | cut -d. -f3)"
  rm -rf "$mod" && mkdir -p "$mod"
  local upstream
  upstream=$(cd "$mod" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module stanch.local/kubernetes-build"
    echo
    grep -E '^go [0-9]' "$upstream"
    grep -E '^godebug' "$upstream" || true
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    # Every staging module is required at v0.0.0 upstream and mapped to ./staging/...; the
    # published twin of Kubernetes v1.Y.Z is v0.Y.Z.
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/k8s.io/.*#\t\1 => \1 '"$staging"'#p' "$upstream"
    echo ")"
  } >"$mod/go.mod"
  cat >"$mod/tools.go" <<'GO'
package tools

import (
	_ "k8s.io/kubectl/pkg/cmd"
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	_ "k8s.io/kubernetes/cmd/kube-scheduler/app"
)
GO
  (cd "$mod" && go mod tidy)
  local date ld=""
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=$date -X $p.gitCommit=module-$K8S_VERSION"
  done
  local tmp="$k8s_dir.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp"
  for b in "${want[@]}"; do
    log "  go build $b"
    (cd "$mod" && go build -trimpath -ldflags "-s -w$ld" -o "$tmp/$b" "k8s.io/kubernetes/cmd/$b")
  done
  rm -rf "$k8s_dir" && mv "$tmp" "$k8s_dir"
}

build_etcd() {
  if [ -x "$etcd_dir/etcd" ]; then log "etcd $ETCD_VERSION: cached"; return; fi
  log "etcd $ETCD_VERSION: building"
  local mod="$work/etcd-$ETCD_VERSION"
  rm -rf "$mod" && mkdir -p "$mod"
  cat >"$mod/go.mod" <<GOMOD
module stanch.local/etcd-build

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
GOMOD
  cat >"$mod/main.go" <<'GO'
// Command etcd is the upstream etcd server, built from its Go module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$mod" && go mod tidy && mkdir -p "$etcd_dir.tmp" && go build -trimpath -ldflags "-s -w" -o "$etcd_dir.tmp/etcd" .)
  rm -rf "$etcd_dir" && mv "$etcd_dir.tmp" "$etcd_dir"
}

build_kwok() {
  if [ -x "$kwok_dir/kwok" ] && [ -x "$kwok_dir/kwokctl" ]; then log "kwok $KWOK_VERSION: cached"; return; fi
  log "kwok $KWOK_VERSION: building"
  local tmp="$kwok_dir.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp"
  # kwok has no replace directives, so `go install module@version` is exact and hermetic.
  local ld="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
  GOBIN="$tmp" GOFLAGS= go install -trimpath -ldflags "$ld" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
  rm -rf "$kwok_dir" && mv "$tmp" "$kwok_dir"
}

build_helm() {
  if [ -x "$helm_dir/helm" ]; then log "helm $HELM_VERSION: cached"; return; fi
  log "helm $HELM_VERSION: building (a few minutes on 2 cores)"
  local tmp="$helm_dir.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp"
  # helm's go.mod has no replace directives either, so `go install module@version` is exact. The
  # version stamp is what `helm version` prints and what charts' kubeVersion checks compare with.
  local ld="-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
  ld+=" -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
  GOBIN="$tmp" GOFLAGS= go install -trimpath -ldflags "$ld" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  rm -rf "$helm_dir" && mv "$tmp" "$helm_dir"
}

start=$(date +%s)
only=${1:-all}
case "$only" in
  all) build_etcd; build_kwok; build_kubernetes; build_helm ;;
  etcd) build_etcd ;;
  kwok) build_kwok ;;
  kubernetes) build_kubernetes ;;
  helm) build_helm ;;
  *) echo "usage: $0 [all|etcd|kwok|kubernetes|helm]" >&2; exit 2 ;;
esac
log "done in $(( $(date +%s) - start ))s; binaries under $bindir"
