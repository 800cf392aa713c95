#!/usr/bin/env bash
# `make install` and `make uninstall`: rk8s' files in their places, under DESTDIR
# (for packages) and PREFIX.
#
#   scripts/install.sh install     the three binaries, the systemd units, the default
#                                  config files (kept when they exist), man pages,
#                                  rk8sctl's shell completions
#   scripts/install.sh uninstall   every file install wrote but the config files,
#                                  naming what it keeps (config, data, a node's
#                                  pods); PURGE=1 also the config files, the node's
#                                  pods (`rk8s-node reset`) and both binaries' data
#
# Variables: DESTDIR (empty), PREFIX (/usr/local), SYSCONFDIR (/etc), UNITDIR
# (PREFIX/lib/systemd/system), BUILD (target/release: where the binaries are).
# The pause sandbox is built into rk8s-node: no image files are installed.
set -euo pipefail
cd "$(dirname "$0")/.."

action=${1:-install}
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
UNITDIR=${UNITDIR:-$PREFIX/lib/systemd/system}
BUILD=${BUILD:-target/release}
BINDIR=$PREFIX/bin
LIBDIR=$PREFIX/lib/rk8s
MANDIR=$PREFIX/share/man/man1
# What install wrote (paths without DESTDIR), one per line, for uninstall.
MANIFEST=$DESTDIR$LIBDIR/installed-files
BINARIES=(rk8s-server rk8s-node rk8sctl)

put() { # MODE SOURCE TARGET (TARGET without DESTDIR) [install's own options]
  install -D -m "$1" "${@:4}" "$2" "$DESTDIR$3"
  echo "$3" >>"$MANIFEST.new"
}

install_all() {
  for b in "${BINARIES[@]}"; do
    [ -x "$BUILD/$b" ] || { echo "install: $BUILD/$b is missing: build first (make install builds it)" >&2; exit 1; }
  done
  mkdir -p "$DESTDIR$LIBDIR"
  : >"$MANIFEST.new"
  # Stripped, as Debian ships binaries: a debug build's symbols are hundreds of MB.
  for b in "${BINARIES[@]}"; do put 755 "$BUILD/$b" "$BINDIR/$b" --strip; done

  local work
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  for unit in packaging/systemd/*.service.in; do
    local name
    name=$(basename "$unit" .in)
    sed "s|@BINDIR@|$BINDIR|g" "$unit" >"$work/$name"
    put 644 "$work/$name" "$UNITDIR/$name"
  done

  # Config files are the administrator's once installed: never overwritten.
  for conf in server.yaml node.yaml; do
    local target=$SYSCONFDIR/rk8s/$conf
    if [ -e "$DESTDIR$target" ]; then
      echo "install: keeping $DESTDIR$target"
    else
      install -D -m 644 "packaging/$conf" "$DESTDIR$target"
    fi
  done

  mkdir -p "$work/man"
  for b in "${BINARIES[@]}"; do "$BUILD/$b" generate-man-pages "$work/man"; done
  for page in "$work"/man/*.1; do put 644 "$page" "$MANDIR/$(basename "$page")"; done

  "$BUILD/rk8sctl" completion bash >"$work/rk8sctl.bash"
  "$BUILD/rk8sctl" completion zsh >"$work/_rk8sctl"
  "$BUILD/rk8sctl" completion fish >"$work/rk8sctl.fish"
  put 644 "$work/rk8sctl.bash" "$PREFIX/share/bash-completion/completions/rk8sctl"
  put 644 "$work/_rk8sctl" "$PREFIX/share/zsh/site-functions/_rk8sctl"
  put 644 "$work/rk8sctl.fish" "$PREFIX/share/fish/vendor_completions.d/rk8sctl.fish"

  echo "$LIBDIR/installed-files" >>"$MANIFEST.new"
  sort -u "$MANIFEST.new" >"$MANIFEST"
  rm -f "$MANIFEST.new"
  echo "install: $(wc -l <"$MANIFEST") files under ${DESTDIR:-/}; config in $DESTDIR$SYSCONFDIR/rk8s"
}

uninstall_all() {
  if [ "${PURGE:-0}" = 1 ]; then
    # The node's pods and network go first, while its binary is still there.
    if [ -x "$DESTDIR$BINDIR/rk8s-node" ] && [ -z "$DESTDIR" ]; then
      "$BINDIR/rk8s-node" reset || echo "uninstall: rk8s-node reset failed; continuing" >&2
    fi
  fi
  if [ -f "$MANIFEST" ]; then
    while read -r f; do rm -f "$DESTDIR$f"; done <"$MANIFEST"
  else
    echo "uninstall: no $MANIFEST: nothing installed here" >&2
  fi
  # Directories install made under its own, now empty.
  [ -d "$DESTDIR$LIBDIR" ] && find "$DESTDIR$LIBDIR" -depth -type d -empty -delete
  if [ "${PURGE:-0}" = 1 ]; then
    rm -f "$DESTDIR$SYSCONFDIR/rk8s/server.yaml" "$DESTDIR$SYSCONFDIR/rk8s/node.yaml"
    rmdir "$DESTDIR$SYSCONFDIR/rk8s" 2>/dev/null || true
    rm -rf "$DESTDIR/var/lib/rk8s" "$DESTDIR/run/rk8s"
  fi
  if [ "${PURGE:-0}" = 1 ]; then echo "uninstall: done (purged)"; return; fi
  # What stays, named, so that nothing is left behind unknowingly.
  local kept=() f
  for f in "$SYSCONFDIR/rk8s/server.yaml" "$SYSCONFDIR/rk8s/node.yaml" /var/lib/rk8s/server /var/lib/rk8s/node /run/rk8s; do
    if [ -e "$DESTDIR$f" ]; then kept+=("$DESTDIR$f"); fi
  done
  if [ ${#kept[@]} -gt 0 ]; then
    echo "uninstall: kept (PURGE=1 removes them): ${kept[*]}"
  fi
  if [ -e "$DESTDIR/var/lib/rk8s/node" ]; then
    echo "uninstall: the node's pods, pod network and container helper are not stopped: PURGE=1 runs 'rk8s-node reset' before removing the binaries"
  fi
  echo "uninstall: done"
}

case "$action" in
install) install_all ;;
uninstall) uninstall_all ;;
*) echo "usage: $0 install|uninstall" >&2; exit 2 ;;
esac
