#!/usr/bin/env bash
# Build the local images k8n's node tests and examples use, from Debian's busybox-static
# (no registry is reachable): a busybox image and the pod sandbox ("pause") image.
# Idempotent; needs a running Docker engine. Usage: deploy/images/build.sh
set -euo pipefail
BUSYBOX=${BUSYBOX:-/bin/busybox}
[ -x "$BUSYBOX" ] || { echo "busybox-static is missing (apt-get install busybox-static)" >&2; exit 1; }
if docker image inspect k8n/busybox:latest >/dev/null 2>&1 && docker image inspect k8n/pause:3.9 >/dev/null 2>&1; then
  exit 0
fi
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
tar -C "$root" -c . | docker import --change 'CMD ["sh"]' --change 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin' - k8n/busybox:latest >/dev/null
tar -C "$root" -c . | docker import --change 'ENTRYPOINT ["/bin/sleep", "2147483647"]' - k8n/pause:3.9 >/dev/null
# the names upstream manifests and the README's examples use
docker tag k8n/busybox:latest busybox:latest
docker tag k8n/busybox:latest busybox:1.36
echo "built k8n/busybox:latest (also busybox:latest, busybox:1.36) and k8n/pause:3.9"
