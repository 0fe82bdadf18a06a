"""Appliances from container images: an OCI image built here with Debian's umoci (from
scratch: a static busybox in one layer, a second layer that replaces a file and deletes
another), booted under TCG running the image's own entrypoint, with its Env, WorkingDir
and User; then the same image as `docker save` output gives the same initramfs bytes."""

import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from appliance.assemble import apt, kernelfetch, pkglock
from appliance.assemble.template import TEMPLATES
from tests.conftest import ROOT, SCONS, appliance

pytestmark = pytest.mark.boot


def busybox() -> bytes:
    """Debian's static busybox, from the shell template's lock (fetched into the cache)."""
    lock = pkglock.read(TEMPLATES / "shell.lock")
    pin = next(p for p in lock.pins if p.name == "busybox-static")
    deb = apt.fetch(apt.Apt(), pin, kernelfetch.cache_dir(), "test")
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return archive.extractfile("./bin/busybox").read()


def umoci(*args: str, cwd: Path) -> None:
    done = subprocess.run(["umoci", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """An OCI layout `img` with tag `app`: two layers and a config."""
    if shutil.which("umoci") is None:
        pytest.fail("umoci is not installed: run ./setup")
    root = tmp_path_factory.mktemp("oci")
    umoci("init", "--layout", "img", cwd=root)
    umoci("new", "--image", "img:base", cwd=root)
    umoci("unpack", "--image", "img:base", "bundle", cwd=root)
    rootfs = root / "bundle" / "rootfs"
    for folder in ("bin", "etc", "srv", "tmp"):
        (rootfs / folder).mkdir(exist_ok=True)
    (rootfs / "bin" / "busybox").write_bytes(busybox())
    (rootfs / "bin" / "busybox").chmod(0o755)
    (rootfs / "bin" / "sh").symlink_to("busybox")
    (rootfs / "etc" / "msg").write_text("from layer 1\n")
    (rootfs / "etc" / "old").write_text("deleted by layer 2\n")
    umoci("repack", "--image", "img:app", "bundle", cwd=root)
    umoci("unpack", "--image", "img:app", "bundle2", cwd=root)  # the second layer: a diff against the first
    second = root / "bundle2" / "rootfs"
    (second / "etc" / "old").unlink()  # a whiteout
    (second / "etc" / "msg").write_text("from layer 2\n")
    umoci("repack", "--image", "img:app", "bundle2", cwd=root)
    script = "echo image says $(cat /etc/msg) in $(pwd) as $(/bin/busybox id -u):$(/bin/busybox id -g) " \
             "with $GREETING; ls /etc"
    umoci("config", "--image", "img:app", "--config.entrypoint", "sh", "--config.cmd", "-c", "--config.cmd", script,
          "--config.env", "GREETING=hello", "--config.env", "PATH=/bin", "--config.workingdir", "/srv",
          "--config.user", "1000:1000", cwd=root)
    return root


def build(template: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCONS, "-Q", f"BUILD_DIR={out}", "appliance",
                           f"TEMPLATE={template}"], cwd=ROOT, capture_output=True, text=True, timeout=900)


def template(folder: Path, source: str) -> Path:
    path = folder / "app.toml"
    path.write_text(f'[appliance]\ndescription = "an OCI image"\n\n[image]\n{source}\n\n'
                    '[init]\nmounts = ["proc", "sysfs", "devtmpfs"]\n\n[vm]\nmachine = "microvm"\n')
    return path


def docker_archive(layout: Path, tag: str, target: Path) -> None:
    """`docker save` output of the layout's image: manifest.json, the config, layer tars."""
    blobs = layout / "blobs" / "sha256"
    top = next(m for m in json.loads((layout / "index.json").read_text())["manifests"]
               if m["annotations"]["org.opencontainers.image.ref.name"] == tag)
    manifest = json.loads((blobs / top["digest"][7:]).read_bytes())
    import gzip

    with tarfile.open(target, "w") as out:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))

        layers = []
        for n, layer in enumerate(manifest["layers"]):
            add(f"{n}/layer.tar", gzip.decompress((blobs / layer["digest"][7:]).read_bytes()))
            layers.append(f"{n}/layer.tar")
        config = manifest["config"]["digest"][7:]
        add(f"{config}.json", (blobs / config).read_bytes())
        add("manifest.json", json.dumps([{"Config": f"{config}.json", "RepoTags": ["app:latest"],
                                          "Layers": layers}]).encode())


def test_an_image_boots_its_entrypoint_and_a_docker_archive_of_it_gives_the_same_initrd(image, tmp_path):
    folder = tmp_path / "t"
    shutil.copytree(image / "img", folder / "img")
    done = build(template(folder, 'oci = "img:app"'), tmp_path / "out")
    assert done.returncode == 0, done.stdout + done.stderr
    bundle = tmp_path / "out" / "app"
    run = appliance("run", str(bundle), "--accel", "tcg", timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "image says from layer 2 in /srv as 1000:1000 with hello" in run.stdout
    listing = run.stdout.split("with hello", 1)[1]
    assert "msg" in listing and "old" not in listing  # the second layer's whiteout
    info = json.loads(appliance("inspect", str(bundle), "--json").stdout)
    sources = {c["path"]: c["source"] for c in info["contents"]}
    # each file named by the layer that wrote it last: busybox by the first, msg by the second
    assert sources["/bin/busybox"].startswith("oci:sha256:") and sources["/etc/msg"] != sources["/bin/busybox"]
    assert len({s for s in sources.values() if s.startswith("oci:")}) == 2
    sbom = json.loads(appliance("sbom", str(bundle), "--format", "cyclonedx").stdout)
    layers = [c for c in sbom["components"] if c["name"].startswith("oci layer sha256:")]
    assert len(layers) == 2 and any(f["name"] == "bin/busybox" for c in layers for f in c.get("components", []))
    docker_archive(folder / "img", "app", folder / "app.tar")
    other = tmp_path / "d"
    other.mkdir()
    shutil.copy(folder / "app.tar", other / "app.tar")
    done = build(template(other, 'docker-archive = "app.tar"'), tmp_path / "out2")
    assert done.returncode == 0, done.stdout + done.stderr
    # the same files, modes, order and init.conf: the same bytes (only bundle.json's sources
    # differ, naming compressed blobs in one and plain layer tars in the other)
    assert (tmp_path / "out2" / "app" / "initrd").read_bytes() == (bundle / "initrd").read_bytes()


def test_a_damaged_image_fails_the_build_in_one_line_and_writes_nothing(image, tmp_path):
    folder = tmp_path / "t"
    shutil.copytree(image / "img", folder / "img")
    blobs = sorted((folder / "img" / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    biggest = blobs[-1]  # the busybox layer
    biggest.write_bytes(biggest.read_bytes()[:-4] + b"oops")
    done = build(template(folder, 'oci = "img:app"'), tmp_path / "out")
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "does not match its digest" in errors[0] and "img:app" in errors[0], done.stderr
    assert not (tmp_path / "out" / "app" / "initrd").exists()
