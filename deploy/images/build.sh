#!/usr/bin/env bash
# Build the local images k8n's node tests and examples use, from Debian's busybox-static
# (no registry is reachable): a busybox image and the pod sandbox ("pause") image, under k8n's own names:
#   k8n/busybox:latest, k8n/busybox:1.36 (a second tag of the same image), k8n/pause:3.9
# The tests use only these. The familiar names the examples use (busybox:latest, busybox:1.36) are tagged
# too, but only where this machine has no image of that name: an image a user already has is never replaced.
# Idempotent; needs a running Docker engine. Usage: deploy/images/build.sh
set -euo pipefail
BUSYBOX=${BUSYBOX:-/bin/busybox}
have() { docker image inspect "$1" >/dev/null 2>&1; }
image_id() { docker image inspect --format '{{.Id}}' "$1"; }

if have k8n/busybox:latest && have k8n/pause:3.9; then
  echo "k8n/busybox:latest and k8n/pause:3.9 are present: not rebuilt"
else
  [ -x "$BUSYBOX" ] || { echo "busybox-static is missing (apt-get install busybox-static)" >&2; exit 1; }
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,proc,sys,dev,var/www,root,home}
  chmod 1777 "$root/tmp"
  cp "$BUSYBOX" "$root/bin/busybox"
  for applet in $("$BUSYBOX" --list); do
    [ "$applet" = busybox ] || ln -sf /bin/busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
  echo '<h1>k8n busybox</h1>' > "$root/var/www/index.html"
  tar -C "$root" -c . | docker import --change 'CMD ["sh"]' --change 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin' - \
    k8n/busybox:latest >/dev/null
  tar -C "$root" -c . | docker import --change 'ENTRYPOINT ["/bin/sleep", "2147483647"]' - k8n/pause:3.9 >/dev/null
  echo "built k8n/busybox:latest and k8n/pause:3.9"
fi

# k8n's own second tag (the tests' "another tag of the same image"): always k8n's busybox
docker tag k8n/busybox:latest k8n/busybox:1.36
echo "tagged k8n/busybox:1.36 (k8n/busybox:latest)"

# the names upstream manifests and the examples in deploy/ use: only where absent, never over a user's image
for name in busybox:latest busybox:1.36; do
  if ! have "$name"; then
    docker tag k8n/busybox:latest "$name"
    echo "tagged $name (k8n/busybox:latest): this machine had no $name"
  elif [ "$(image_id "$name")" = "$(image_id k8n/busybox:latest)" ]; then
    echo "$name is k8n/busybox:latest already"
  else
    echo "$name left as it is: this machine already has an image of that name (k8n's is k8n/busybox:latest)"
  fi
done
