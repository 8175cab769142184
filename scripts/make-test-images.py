#!/usr/bin/env python3
"""Builds coracle's test images without any registry and saves them as archives.

The images are made from Debian packages on this machine (busybox from
`busybox-static`), so tests and examples need no network. Each image is written
as a `docker save` archive (`<name>.docker.tar`) and as an OCI image-layout
archive (`<name>.oci.tar`) in the output directory.

Archives for the image store's own tests, OCI layouts whose index.json names an image index:
multiarch (linux/amd64 + linux/arm64), armonly (linux/arm64 only), mixed (zstd, gzip and
uncompressed layers), badblob (a layer blob that does not match its digest), and
baddiffid.docker.tar (a layer that does not match the config's diff id).

usage: make-test-images.py OUTDIR
"""
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time

EPOCH = 1700000000  # fixed mtime: the same inputs give the same digests

# Used when busybox cannot list its applets.
BUSYBOX_APPLETS = [
    "sh", "ash", "ls", "cat", "echo", "env", "sleep", "true", "false", "id", "mkdir",
    "rm", "touch", "wget", "httpd", "nc", "hostname", "ps", "kill", "printf", "test",
    "grep", "sed", "head", "tail", "wc", "date", "seq", "dd", "mount", "find", "stat",
    "ip", "ifconfig", "pwd", "whoami", "chmod", "chown", "cp", "mv", "ln", "yes", "tee",
    "nslookup", "uname", "timeout", "sort", "uniq", "cut", "tr", "expr", "basename",
    "dirname", "readlink", "xargs", "top", "free", "df", "du", "awk", "vi", "less",
]


def busybox_applets() -> list:
    """The applets the machine's busybox-static has, or a fixed list if it cannot say."""
    try:
        out = subprocess.run(["/usr/bin/busybox", "--list"], capture_output=True, check=True,
                             text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return BUSYBOX_APPLETS
    applets = sorted({a for a in out.split() if a and "/" not in a and a != "busybox"})
    return applets or BUSYBOX_APPLETS


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Layer:
    """An uncompressed layer tar built in memory."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def _info(self, name, kind, mode, size=0, uid=0, gid=0):
        info = tarfile.TarInfo(name.lstrip("/"))
        info.type = kind
        info.mode = mode
        info.size = size
        info.uid, info.gid = uid, gid
        info.uname = info.gname = ""
        info.mtime = EPOCH
        return info

    def dir(self, name, mode=0o755, uid=0, gid=0):
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode, uid=uid, gid=gid))

    def file(self, name, data: bytes, mode=0o644, uid=0, gid=0):
        self.tar.addfile(self._info(name, tarfile.REGTYPE, mode, len(data), uid, gid), io.BytesIO(data))

    def symlink(self, name, target):
        info = self._info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self.tar.addfile(info)

    def hardlink(self, name, target):
        info = self._info(name, tarfile.LNKTYPE, 0o644)
        info.linkname = target.lstrip("/")
        self.tar.addfile(info)

    def whiteout(self, path):
        d, b = os.path.split(path.lstrip("/"))
        self.file(os.path.join(d, ".wh." + b), b"", 0o644)

    def opaque(self, directory):
        self.file(os.path.join(directory.lstrip("/"), ".wh..wh..opq"), b"", 0o644)

    def bytes(self) -> bytes:
        self.tar.close()
        return self.buf.getvalue()


def busybox_base() -> Layer:
    layer = Layer()
    for d in ["bin", "etc", "tmp", "root", "home", "proc", "sys", "dev", "var", "var/www", "usr", "usr/bin"]:
        layer.dir(d, 0o1777 if d == "tmp" else 0o755)
    with open("/usr/bin/busybox", "rb") as f:
        layer.file("bin/busybox", f.read(), 0o755)
    # Every applet, as Docker Hub's busybox image has them (kubectl cp needs tar, for one).
    for applet in busybox_applets():
        layer.symlink("bin/" + applet, "busybox")
    layer.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\nuser:x:1000:1000:user:/home/user:/bin/sh\n")
    layer.file("etc/group", b"root:x:0:\nnobody:x:65534:\nuser:x:1000:\nextra:x:2000:user\n")
    layer.dir("home/user", 0o755, 1000, 1000)
    return layer


def config_json(diff_ids, cmd, entrypoint=None, env=None, workdir="", user="", created="2023-11-14T22:13:20Z"):
    cfg = {
        "Env": env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": cmd,
    }
    if entrypoint:
        cfg["Entrypoint"] = entrypoint
    if workdir:
        cfg["WorkingDir"] = workdir
    if user:
        cfg["User"] = user
    doc = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": created, "created_by": "coracle make-test-images.py"} for _ in diff_ids],
    }
    return json.dumps(doc, sort_keys=True).encode()


def write_archives(outdir, name, tag, layers, **cfg):
    """Writes NAME.docker.tar (docker save) and NAME.oci.tar (OCI layout, gzip layers)."""
    raw = [layer.bytes() for layer in layers]
    diff_ids = [sha256(b) for b in raw]
    config = config_json(diff_ids, **cfg)
    config_digest = sha256(config)

    # docker save: uncompressed layers, manifest.json, repositories
    path = os.path.join(outdir, name + ".docker.tar")
    with tarfile.open(path + ".tmp", "w") as out:
        def add(arcname, data):
            info = tarfile.TarInfo(arcname)
            info.size, info.mtime, info.mode = len(data), EPOCH, 0o644
            out.addfile(info, io.BytesIO(data))
        layer_paths = []
        for b, d in zip(raw, diff_ids):
            p = d.split(":")[1] + "/layer.tar"
            add(p, b)
            layer_paths.append(p)
        add(config_digest.split(":")[1] + ".json", config)
        add("manifest.json", json.dumps([{"Config": config_digest.split(":")[1] + ".json",
                                          "RepoTags": [tag], "Layers": layer_paths}]).encode())
        repo, t = tag.rsplit(":", 1)
        add("repositories", json.dumps({repo: {t: diff_ids[-1].split(":")[1]}}).encode())
    os.replace(path + ".tmp", path)

    # OCI image layout: gzip-compressed layers
    path = os.path.join(outdir, name + ".oci.tar")
    blobs = {}
    layer_descs = []
    for b in raw:
        gz = gzip.compress(b, mtime=0)
        d = sha256(gz)
        blobs[d] = gz
        layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": len(gz)})
    blobs[config_digest] = config
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": len(config)},
        "layers": layer_descs,
    }, sort_keys=True).encode()
    manifest_digest = sha256(manifest)
    blobs[manifest_digest] = manifest
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
                       "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": tag.rsplit(":", 1)[1],
                                                              "io.containerd.image.name": tag},
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    }).encode()
    with tarfile.open(path + ".tmp", "w") as out:
        def add(arcname, data):
            info = tarfile.TarInfo(arcname)
            info.size, info.mtime, info.mode = len(data), EPOCH, 0o644
            out.addfile(info, io.BytesIO(data))
        add("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        add("index.json", index)
        for d, b in blobs.items():
            add("blobs/sha256/" + d.split(":")[1], b)
    os.replace(path + ".tmp", path)
    print(f"{name}: {tag} id={config_digest[:19]} layers={len(raw)}")


def oci_add(out, arcname, data):
    info = tarfile.TarInfo(arcname)
    info.size, info.mtime, info.mode = len(data), EPOCH, 0o644
    out.addfile(info, io.BytesIO(data))


def compress(raw: bytes, how: str) -> (bytes, str):
    """Returns (blob, media type) for one layer: "gzip", "zstd" or "none"."""
    if how == "gzip":
        return gzip.compress(raw, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip"
    if how == "zstd":
        if not shutil.which("zstd"):
            sys.exit("make-test-images: the zstd command is missing: apt-get install zstd")
        blob = subprocess.run(["zstd", "-q", "-c", "-3"], input=raw, stdout=subprocess.PIPE, check=True).stdout
        return blob, "application/vnd.oci.image.layer.v1.tar+zstd"
    return raw, "application/vnd.oci.image.layer.v1.tar"


def write_oci_index(outdir, name, tag, platforms, corrupt_layer=False, compressions=None):
    """Writes NAME.oci.tar: index.json names one image index, which lists one manifest per
    platform in `platforms` ([(arch, layers)]). `corrupt_layer` flips a byte of the first
    layer blob while keeping its name, so the blob no longer matches its digest."""
    blobs = {}
    entries = []
    for arch, layers in platforms:
        raw = [layer.bytes() for layer in layers]
        diff_ids = [sha256(b) for b in raw]
        config = json.loads(config_json(diff_ids, cmd=["sh"]))
        config["architecture"] = arch
        config = json.dumps(config, sort_keys=True).encode()
        blobs[sha256(config)] = config
        descs = []
        for i, b in enumerate(raw):
            how = (compressions or ["gzip"] * len(raw))[i]
            blob, media_type = compress(b, how)
            d = sha256(blob)
            if corrupt_layer and i == 0:
                blob = bytearray(blob)
                blob[len(blob) // 2] ^= 0xFF
                blob = bytes(blob)
            blobs[d] = blob
            descs.append({"mediaType": media_type, "digest": d, "size": len(blob)})
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config), "size": len(config)},
            "layers": descs,
        }, sort_keys=True).encode()
        blobs[sha256(manifest)] = manifest
        entries.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(manifest),
                        "size": len(manifest), "platform": {"architecture": arch, "os": "linux"}})
    inner = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": entries}, sort_keys=True).encode()
    blobs[sha256(inner)] = inner
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha256(inner),
                       "size": len(inner), "annotations": {"org.opencontainers.image.ref.name": tag.rsplit(":", 1)[1],
                                                          "io.containerd.image.name": tag}}],
    }).encode()
    path = os.path.join(outdir, name + ".oci.tar")
    with tarfile.open(path + ".tmp", "w") as out:
        oci_add(out, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        oci_add(out, "index.json", index)
        for d, b in blobs.items():
            oci_add(out, "blobs/sha256/" + d.split(":")[1], b)
    os.replace(path + ".tmp", path)
    print(f"{name}: {tag} platforms={[a for a, _ in platforms]}")


def write_bad_diff_id(outdir):
    """baddiffid.docker.tar: a docker-save archive whose config names a diff id the layer
    does not have."""
    raw = busybox_base().bytes()
    wrong = "sha256:" + "0" * 64
    config = config_json([wrong], cmd=["sh"])
    cd = sha256(config).split(":")[1]
    path = os.path.join(outdir, "baddiffid.docker.tar")
    with tarfile.open(path + ".tmp", "w") as out:
        oci_add(out, "layer/layer.tar", raw)
        oci_add(out, cd + ".json", config)
        oci_add(out, "manifest.json", json.dumps([{"Config": cd + ".json", "RepoTags": ["coracle.test/baddiffid:v1"],
                                                   "Layers": ["layer/layer.tar"]}]).encode())
    os.replace(path + ".tmp", path)
    print("baddiffid: coracle.test/baddiffid:v1 (diff id does not match)")


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "target/test-images"
    os.makedirs(outdir, exist_ok=True)
    if not os.path.exists("/usr/bin/busybox"):
        sys.exit("make-test-images: /usr/bin/busybox is missing: apt-get install busybox-static")

    # busybox: one layer, like Docker Hub's busybox (CMD sh)
    write_archives(outdir, "busybox", "docker.io/library/busybox:latest", [busybox_base()], cmd=["sh"])

    # layered: a second image on the same base layer, with whiteouts and an opaque dir
    upper = Layer()
    upper.dir("data")
    upper.file("data/kept", b"kept\n")
    upper.file("data/removed", b"removed\n")
    upper.dir("opaque")
    upper.file("opaque/old", b"old\n")
    upper.file("etc/motd", b"layer two\n")
    upper.hardlink("data/hardlink", "data/kept")
    upper.symlink("data/symlink", "kept")
    top = Layer()
    top.whiteout("data/removed")
    top.dir("opaque")
    top.opaque("opaque")
    top.file("opaque/new", b"new\n")
    top.file("etc/motd", b"layer three\n")
    write_archives(outdir, "layered", "coracle.test/layered:v1", [busybox_base(), upper, top],
                   cmd=["cat", "/etc/motd"], entrypoint=None, env=[
                       "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "IMAGE_VAR=from-image"],
                   workdir="/data", user="")

    # entrypoint: ENTRYPOINT + CMD, a USER and a WORKDIR, for command/args semantics
    write_archives(outdir, "entrypoint", "coracle.test/entrypoint:v1", [busybox_base()],
                   entrypoint=["echo", "entrypoint"], cmd=["default-arg"], user="1000:1000", workdir="/home/user",
                   env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "IMAGE_VAR=from-image"])

    # multiarch: an index with linux/amd64 and linux/arm64 (the arm64 one is busybox too)
    write_oci_index(outdir, "multiarch", "coracle.test/multiarch:v1",
                    [("amd64", [busybox_base()]), ("arm64", [busybox_base()])])
    # armonly: an index with linux/arm64 only, for the platform mismatch error
    write_oci_index(outdir, "armonly", "coracle.test/armonly:v1", [("arm64", [busybox_base()])])
    # mixed: one layer each zstd, gzip and uncompressed (the layers of `layered`)
    write_oci_index(outdir, "mixed", "coracle.test/mixed:v1", [("amd64", [busybox_base(), upper, top])],
                    compressions=["zstd", "gzip", "none"])
    # badblob: a layer blob that does not match its digest
    write_oci_index(outdir, "badblob", "coracle.test/badblob:v1", [("amd64", [busybox_base()])], corrupt_layer=True)
    write_bad_diff_id(outdir)


if __name__ == "__main__":
    main()
