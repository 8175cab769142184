#!/usr/bin/env python3
"""Builds the images of coracle's examples from Debian packages, with no registry.

- busybox.docker.tar: docker.io/library/busybox:latest, the same image (same digests) as
  make-test-images.py builds, from `busybox-static`.
- nginx.docker.tar: docker.io/library/nginx:latest, from Debian's `nginx` (`nginx-light`): the
  nginx binary, every shared library `ldd` names and the dynamic loader, on top of the busybox
  layer (so the two images share it and a shell is at hand for debugging). Configured as Docker
  Hub's nginx image is where it matters to a manifest: it serves /usr/share/nginx/html on port
  80, runs in the foreground (CMD ["nginx", "-g", "daemon off;"]), its workers run as user
  `nginx`, access log to standard output and error log to standard error, STOPSIGNAL SIGQUIT.

The archives are `docker save` archives, for `coracle image import`. Building them again gives
the same digests as long as the Debian packages are the same.

usage: example-images.py OUTDIR
"""
import importlib.util
import json
import os
import re
import subprocess
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("make_test_images", os.path.join(HERE, "make-test-images.py"))
mti = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mti)

NGINX = "/usr/sbin/nginx"

NGINX_CONF = b"""\
# nginx.conf of coracle's example nginx image (Debian's nginx), laid out like Docker Hub's.
user  nginx;
worker_processes  auto;

error_log  stderr notice;
pid        /run/nginx.pid;

events {
    worker_connections  1024;
}

http {
    include       /etc/nginx/mime.types;
    default_type  application/octet-stream;

    log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
                      '$status $body_bytes_sent "$http_referer" '
                      '"$http_user_agent" "$http_x_forwarded_for"';

    access_log  /dev/stdout  main;

    sendfile        on;
    keepalive_timeout  65;

    include /etc/nginx/conf.d/*.conf;
}
"""

DEFAULT_SERVER = b"""\
server {
    listen       80;
    server_name  localhost;

    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }

    error_page   500 502 503 504  /50x.html;
    location = /50x.html {
        root   /usr/share/nginx/html;
    }
}
"""

ERROR_PAGE = b"""<!DOCTYPE html>
<html><head><title>Error</title></head>
<body><h1>An error occurred.</h1></body></html>
"""


def read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def shared_libraries(binary):
    """The paths `ldd` resolves for BINARY, the dynamic loader included."""
    out = subprocess.run(["ldd", binary], stdout=subprocess.PIPE, check=True, text=True).stdout
    paths = []
    for line in out.splitlines():
        m = re.search(r"(/\S+) \(0x", line)
        if m:
            paths.append(m.group(1))
    if not any("ld-linux" in p for p in paths):
        sys.exit(f"example-images: ldd {binary} names no dynamic loader:\n{out}")
    return paths


def in_usr(path):
    """Where PATH lives in a merged-/usr layout (/lib/x → usr/lib/x), relative to the root."""
    path = path.lstrip("/")
    if path.startswith(("lib/", "lib64/", "bin/", "sbin/")):
        path = "usr/" + path
    return path


def nginx_layer():
    layer = mti.Layer()
    # busybox's layer has real /bin and /usr/bin; the libraries go to /usr/lib* with the
    # merged-/usr symlinks Debian has, so the loader finds them in its default directories.
    for d in ["usr/lib", "usr/lib/x86_64-linux-gnu", "usr/lib64", "usr/sbin", "etc/nginx",
              "etc/nginx/conf.d", "usr/share", "usr/share/nginx", "usr/share/nginx/html", "var/lib",
              "var/lib/nginx", "var/log", "var/log/nginx", "var/cache", "var/cache/nginx", "run",
              "var/lock"]:
        layer.dir(d)
    layer.symlink("lib", "usr/lib")
    layer.symlink("lib64", "usr/lib64")
    for lib in shared_libraries(NGINX):
        layer.file(in_usr(lib), read(os.path.realpath(lib)), 0o755)
    layer.file("usr/sbin/nginx", read(NGINX), 0o755)
    layer.file("etc/nginx/nginx.conf", NGINX_CONF)
    layer.file("etc/nginx/conf.d/default.conf", DEFAULT_SERVER)
    layer.file("etc/nginx/mime.types", read("/etc/nginx/mime.types"))
    layer.file("usr/share/nginx/html/index.html", read("/usr/share/nginx/html/index.html"))
    layer.file("usr/share/nginx/html/50x.html", ERROR_PAGE)
    # users: busybox's, plus nginx's (Docker Hub's uid/gid 101) and Debian's www-data
    layer.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
                             b"nobody:x:65534:65534:nobody:/home:/bin/false\n"
                             b"user:x:1000:1000:user:/home/user:/bin/sh\n"
                             b"www-data:x:33:33:www-data:/var/www:/bin/false\n"
                             b"nginx:x:101:101:nginx user:/nonexistent:/bin/false\n")
    layer.file("etc/group", b"root:x:0:\nnobody:x:65534:\nuser:x:1000:\nextra:x:2000:user\n"
                            b"www-data:x:33:\nnginx:x:101:\n")
    layer.file("etc/nsswitch.conf", b"passwd: files\ngroup: files\nhosts: files dns\n")
    # Docker Hub's image links its log files to the container's output too.
    layer.symlink("var/log/nginx/access.log", "/dev/stdout")
    layer.symlink("var/log/nginx/error.log", "/dev/stderr")
    return layer


def write_docker_save(outdir, name, tag, layers, config):
    """Writes NAME.docker.tar, a `docker save` archive of LAYERS with the image CONFIG."""
    raw = [layer.bytes() for layer in layers]
    diff_ids = [mti.sha256(b) for b in raw]
    created = "2023-11-14T22:13:20Z"
    image = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": created, "created_by": "coracle example-images.py"} for _ in diff_ids],
    }, sort_keys=True).encode()
    config_name = mti.sha256(image).split(":")[1] + ".json"
    path = os.path.join(outdir, name + ".docker.tar")
    with tarfile.open(path + ".tmp", "w") as out:
        layer_paths = []
        for b, d in zip(raw, diff_ids):
            p = d.split(":")[1] + "/layer.tar"
            mti.oci_add(out, p, b)
            layer_paths.append(p)
        mti.oci_add(out, config_name, image)
        mti.oci_add(out, "manifest.json", json.dumps(
            [{"Config": config_name, "RepoTags": [tag], "Layers": layer_paths}]).encode())
        repo, t = tag.rsplit(":", 1)
        mti.oci_add(out, "repositories", json.dumps({repo: {t: diff_ids[-1].split(":")[1]}}).encode())
    os.replace(path + ".tmp", path)
    print(f"{name}: {tag} id={mti.sha256(image)[:19]} layers={len(raw)}")


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "target/example-images"
    os.makedirs(outdir, exist_ok=True)
    for path, package in [("/usr/bin/busybox", "busybox-static"), (NGINX, "nginx-light"),
                          ("/etc/nginx/mime.types", "nginx-light")]:
        if not os.path.exists(path):
            sys.exit(f"example-images: {path} is missing: apt-get install {package}")

    mti.write_archives(outdir, "busybox", "docker.io/library/busybox:latest", [mti.busybox_base()], cmd=["sh"])
    write_docker_save(outdir, "nginx", "docker.io/library/nginx:latest", [mti.busybox_base(), nginx_layer()], {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": ["nginx", "-g", "daemon off;"],
        "ExposedPorts": {"80/tcp": {}},
        "StopSignal": "SIGQUIT",
    })


if __name__ == "__main__":
    main()
