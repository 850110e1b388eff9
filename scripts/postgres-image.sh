#!/usr/bin/env bash
# A PostgreSQL image for the tests, built from this machine's own PostgreSQL (Debian's
# `postgresql`, installed by scripts/postgres.sh) with no registry: its binaries, the
# libraries they link, its share folder and busybox-static as the shell, imported as a tar.
# It reads POSTGRES_PASSWORD and POSTGRES_DB as the official `postgres` image does, listens
# on 5432, and has pg_isready on its PATH, so the `ai-stack-postgres` template runs with
# it in place of `postgres:17` (POSTGRES_IMAGE=stack-test-postgres:15). Idempotent.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/postgres.sh" >/dev/null
version="$(ls /usr/lib/postgresql | sort -n | tail -n 1)"
image="stack-test-postgres:$version"
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "postgres-image: $image is there"
  exit 0
fi
[ -x /bin/busybox ] || { echo "postgres-image: /bin/busybox is missing (apt-get install busybox-static)"; exit 1; }
echo "postgres-image: building $image"
python3 - "$version" "$image" <<'PY'
import io, os, subprocess, sys, tarfile

version, image = sys.argv[1], sys.argv[2]
bindir = f"/usr/lib/postgresql/{version}/bin"
binaries = [f"{bindir}/{b}" for b in ("postgres", "initdb", "pg_isready", "pg_ctl")]
libs = set()
for b in binaries:
    out = subprocess.run(["ldd", b], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts and len(parts) > 2 and parts[2].startswith("/"):
            libs.add(parts[2])
        elif parts and parts[0].startswith("/"):
            libs.add(parts[0])
lib_dirs = {f"/usr/lib/postgresql/{version}/lib"}

entrypoint = f"""#!/bin/sh
set -e
export PATH={bindir}:/bin
data=/var/lib/postgresql/data
if [ ! -s "$data/PG_VERSION" ]; then
  printf '%s\\n' "${{POSTGRES_PASSWORD:-postgres}}" > /tmp/pwfile
  initdb -D "$data" -U postgres --pwfile=/tmp/pwfile --auth-local=trust --auth-host=scram-sha-256 --locale=C -E UTF8 >/dev/null
  rm -f /tmp/pwfile
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$data/pg_hba.conf"
  db="${{POSTGRES_DB:-postgres}}"
  if [ "$db" != postgres ]; then
    echo "CREATE DATABASE \\"$db\\";" | postgres --single -D "$data" postgres >/dev/null
  fi
fi
exec postgres -D "$data" -c listen_addresses='*' -c unix_socket_directories=/tmp
"""

buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as tar:
    def add_dir(path, uid=0, mode=0o755):
        info = tarfile.TarInfo(path.lstrip("/"))
        info.type = tarfile.DIRTYPE
        info.mode = mode
        info.uid = info.gid = uid
        tar.addfile(info)
    def add_bytes(path, data, mode=0o644):
        info = tarfile.TarInfo(path.lstrip("/"))
        info.size = len(data)
        info.mode = mode
        tar.addfile(info, io.BytesIO(data))
    def add_file(path):
        tar.add(os.path.realpath(path), arcname=path.lstrip("/"), recursive=False)
    for d in ("/bin", "/tmp", "/etc", "/var", "/var/lib", "/var/lib/postgresql", "/usr", "/usr/lib", "/usr/share", "/lib64"):
        add_dir(d, mode=0o1777 if d == "/tmp" else 0o755)
    add_dir("/var/lib/postgresql/data", uid=999, mode=0o700)
    add_file("/bin/busybox")
    for applet in ("sh", "printf", "echo", "rm", "cat"):
        info = tarfile.TarInfo(f"bin/{applet}")
        info.type = tarfile.SYMTYPE
        info.linkname = "busybox"
        tar.addfile(info)
    for b in binaries:
        add_file(b)
    for lib in sorted(libs):
        add_file(lib)
    for d in lib_dirs:
        if os.path.isdir(d):
            tar.add(d, arcname=d.lstrip("/"))
    tar.add(f"/usr/share/postgresql/{version}", arcname=f"usr/share/postgresql/{version}")
    if os.path.isdir("/usr/share/zoneinfo"):
        tar.add("/usr/share/zoneinfo", arcname="usr/share/zoneinfo")
    add_bytes("/etc/passwd", b"root:x:0:0:root:/:/bin/sh\npostgres:x:999:999:postgres:/var/lib/postgresql:/bin/sh\n")
    add_bytes("/etc/group", b"root:x:0:\npostgres:x:999:\n")
    add_bytes("/docker-entrypoint.sh", entrypoint.encode(), mode=0o755)

changes = [
    "USER 999:999",
    f"ENV PATH={bindir}:/bin",
    "EXPOSE 5432",
    'ENTRYPOINT ["/docker-entrypoint.sh"]',
]
cmd = ["docker", "import"]
for c in changes:
    cmd += ["--change", c]
cmd += ["-", image]
subprocess.run(cmd, input=buf.getvalue(), check=True, stdout=subprocess.DEVNULL)
print(f"postgres-image: built {image} ({len(buf.getvalue()) // (1024 * 1024)} MB)")
PY
