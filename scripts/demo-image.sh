#!/usr/bin/env bash
# Build a 2 MB image, hive/busybox:latest, from Debian's busybox-static, so the README's
# examples work on a machine that cannot pull from a registry.
set -euo pipefail
tag="${1:-hive/busybox:latest}"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
cp "$(command -v busybox || echo /bin/busybox)" "$dir/busybox"
cat > "$dir/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
CMD ["sh"]
DOCKERFILE
docker build -q -t "$tag" "$dir" >/dev/null
echo "$tag"
