"""The minimal kernel recipe: Debian's linux-source-6.1, tinyconfig + our fragments,
our probe patch, built once per recipe and cached by its hash.

Layout in the cache (kernelfetch.cache_dir()):
    sources/<package>_<version>/        the unpacked, pristine source tree (checked by sha256)
    minikernel/src-<patch hash>/        a hard-linked copy of it with the patch applied
    minikernel/out-<patch hash>/        kbuild's object tree (O=), shared by every config of
                                        that source, so a change of compression rebuilds little
    minikernel/img-<recipe hash>/       the finished image, vmlinux, System.map and .config
An img- folder appears in one rename once complete, so its presence means "built".
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from appliance import proc
from appliance.assemble import kconfig, kernelfetch
from appliance.errors import KernelError, ToolFailed
from appliance.fsutil import atomic_write, locked, seal, sealed, unsealed_change
from appliance.paths import ROOT

MINIMAL = ROOT / "recipes" / "kernel" / "minimal"  # the fragments and the probe patch
SOURCE_LOCK = ROOT / "recipes" / "kernel" / "linux-source.lock"
FRAGMENTS = ("base", "virt", "probes")  # every minimal kernel has these; templates add more

# kconfig's choice symbol per image compression; "none" boots vmlinux (PVH) and builds no bzImage.
_COMPRESSION_SYMBOL = {"lz4": "KERNEL_LZ4", "zstd": "KERNEL_ZSTD", "xz": "KERNEL_XZ"}
BUILD_TOOLS = ("make", "gcc", "bison", "flex", "bc", "objcopy")
# Fixed build identity so that the same recipe gives the same image (kernel/reproducible-builds).
_BUILD_ENV = {"KBUILD_BUILD_TIMESTAMP": "1970-01-01", "KBUILD_BUILD_USER": "appliance",
              "KBUILD_BUILD_HOST": "appliance"}


@dataclass(frozen=True)
class SourceLock:
    package: str
    version: str
    deb_sha256: str
    tarball: str  # the source tarball inside the package


@dataclass(frozen=True)
class Recipe:
    source_id: str  # the locked .deb digest, or KERNEL_SRC's path and stamp
    fragments: tuple[tuple[str, str], ...]  # (name, text), merged in order
    patch: str  # our patches as one (probes, virt), "" for none
    compression: str
    kconfig_base: str = "tinyconfig"
    disabled: tuple[str, ...] = ()  # symbols turned off (tune --kconfig); kconfig drops what needs them

    def asked(self) -> dict[str, str]:
        """Every symbol the recipe asks for, compression included."""
        values = kconfig.merge(self.fragments)
        if self.compression in _COMPRESSION_SYMBOL:
            values[_COMPRESSION_SYMBOL[self.compression]] = "y"
        values.update({symbol: "n" for symbol in self.disabled})
        return values

    def without(self, *symbols: str) -> Recipe:
        """The same kernel without SYMBOLS (and, resolved by kconfig, what depends on them)."""
        return replace(self, disabled=tuple(sorted({*self.disabled, *symbols})))

    def source_key(self) -> str:
        return _digest(self.source_id, self.patch)

    def key(self) -> str:
        off = (f"disabled {' '.join(self.disabled)}",) if self.disabled else ()
        return _digest(self.source_key(), self.kconfig_base, self.compression, *(f"{n}\n{t}" for n, t in self.fragments),
                       *off)


def recipe(compression: str = "none", extra: tuple[str, ...] = (), source_id: str | None = None) -> Recipe:
    """The minimal kernel's recipe from the repository's fragments (FRAGMENTS + EXTRA)
    and probe patch; its source is the locked linux-source unless SOURCE_ID names
    another (a KERNEL_SRC tree, a git tag). The one place a Recipe is made."""
    return Recipe(source_id or read_lock(SOURCE_LOCK).deb_sha256, read_fragments(MINIMAL, FRAGMENTS + extra),
                  patches(), compression)


def patches() -> str:
    """Our patches to the kernel, as one: the probes (appliance-probes.patch) and what a
    virtual machine can skip (appliance-virt.patch)."""
    return "".join(path.read_text() for path in sorted(MINIMAL.glob("*.patch")))


def recipe_of(kernel_facts: dict[str, Any]) -> Recipe:
    """The recipe a minimal-kernel bundle was built from (the locked source), checked
    against the key its manifest recorded (KERNEL_FACTS: Bundle.kernel_facts)."""
    facts = kernel_facts
    if facts.get("source") != "minimal" or facts.get("kernel_src"):
        raise KernelError("this needs a bundle built on the minimal kernel from the locked source "
                          "(kernel = \"minimal\", e.g. build/benchmark-minimal)")
    extra = tuple(f for f in facts.get("fragments", FRAGMENTS) if f not in FRAGMENTS)
    found = recipe(facts.get("compression", "none"), extra)
    if found.key() != facts.get("recipe"):
        raise KernelError("the bundle was built from another version of recipes/kernel/minimal: rebuild it")
    return found


def locked_source() -> Path:
    """The locked linux-source tree, unpacked in the cache (fetched once)."""
    return fetch_source(read_lock(SOURCE_LOCK), kernelfetch.cache_dir())


def build_locked(found: Recipe, verbose: bool = False) -> kernelfetch.KernelFiles:
    """FOUND's kernel from the locked source: from the cache, or built now in the shared object tree."""
    return build(found, locked_source(), kernelfetch.cache_dir(), verbose=verbose)


def image_dir(cache: Path, key: str) -> Path:
    """Where the kernel of the recipe with KEY lives once built (see the module's layout)."""
    return cache / "minikernel" / f"img-{key}"


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def read_lock(path: Path) -> SourceLock:
    return SourceLock(*kernelfetch.lock_fields(path, ("package", "version", "deb_sha256", "tarball"), "kernel source lock"))


def read_fragments(folder: Path, names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    out = []
    for name in names:
        path = folder / f"{name}.config"
        if not path.is_file():
            raise KernelError(f"kernel config fragment {path} does not exist")
        out.append((name, path.read_text()))
    return tuple(out)


def fetch_source(lock: SourceLock, cache: Path) -> Path:
    """The unpacked linux-source tree of LOCK, downloaded and unpacked once."""
    root = cache / "sources" / f"{lock.package}_{lock.version}"
    tree = root / "linux"
    if _unpacked(root, lock):
        return tree
    root.parent.mkdir(parents=True, exist_ok=True)
    with locked(root.with_name(f".{root.name}.lock"), f"another build is fetching {lock.package}"):
        if not _unpacked(root, lock):  # unless the build we waited for did it
            _unpack_source(root, lock)
    return tree


def _unpacked(root: Path, lock: SourceLock) -> bool:
    return (root / kernelfetch.MARKER).is_file() and (root / kernelfetch.MARKER).read_text().strip() == lock.deb_sha256


def _unpack_source(root: Path, lock: SourceLock) -> None:
    tree = root / "linux"
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".fetch-") as tmp:
        work = Path(tmp)
        deb = kernelfetch.download_deb(lock.package, lock.version, lock.deb_sha256, work,
                                       f"pin the version apt offers in {SOURCE_LOCK} (`apt-cache policy {lock.package}`)")
        proc.run(["dpkg-deb", "-x", str(deb), str(work / "deb")], timeout=900)
        tarball = work / "deb" / lock.tarball.lstrip("/")
        if not tarball.is_file():
            raise KernelError(f"{deb.name} has no {lock.tarball}: fix `tarball` in recipes/kernel/linux-source.lock")
        (work / "x").mkdir()
        proc.run(["tar", "-xf", str(tarball), "-C", str(work / "x")], timeout=1800)
        tops = list((work / "x").iterdir())
        if len(tops) != 1:
            raise KernelError(f"{lock.tarball} does not hold one top directory")
        os.rename(tops[0], work / "linux")
        (work / kernelfetch.MARKER).write_text(lock.deb_sha256 + "\n")
        os.remove(deb)
        shutil.rmtree(work / "deb")
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        os.rename(work / "linux", tree)
        os.rename(work / kernelfetch.MARKER, root / kernelfetch.MARKER)


def own_source(path: Path) -> tuple[Path, str]:
    """KERNEL_SRC=PATH: the tree and its identity (path plus the top Makefile's stamp;
    touch the Makefile to rebuild after editing the tree)."""
    makefile = path / "Makefile"
    if not makefile.is_file() or not (path / "init" / "main.c").is_file():
        raise KernelError(f"KERNEL_SRC={path} is not a Linux source tree (no Makefile and init/main.c)")
    st = makefile.stat()
    return path.resolve(), f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def patched_tree(source: Path, patch: str, cache: Path, key: str) -> Path:
    """SOURCE with PATCH applied, as a hard-linked copy (the pristine tree stays as is)."""
    target = cache / "minikernel" / f"src-{key}"
    if (target / kernelfetch.MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".src-"))
    try:
        copy = tmp / "tree"
        proc.run(["cp", "-al", str(source), str(copy)], timeout=900)
        if patch:
            for name in _patched_files(patch):  # break the hard link before patch edits
                path = copy / name
                if path.is_file():
                    data = path.read_bytes()
                    path.unlink()
                    path.write_bytes(data)
            patch_file = tmp / "probes.patch"
            patch_file.write_text(patch)
            try:
                proc.run(["patch", "-p1", "--forward", "--quiet", "--no-backup-if-mismatch", "-i", str(patch_file)],
                         cwd=copy)
            except ToolFailed as exc:
                raise KernelError(f"the kernel patch does not apply to this source ({exc.stderr.strip()[:200]}): "
                                  "use the Debian linux-source-6.1 of the lock file, or a tree it fits") from None
        (copy / kernelfetch.MARKER).write_text(key + "\n")
        shutil.rmtree(target, ignore_errors=True)
        os.rename(copy, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _patched_files(patch: str) -> list[str]:
    return [line[6:].split("\t")[0].strip() for line in patch.splitlines() if line.startswith("+++ b/")]


def build(recipe: Recipe, source: Path, cache: Path, jobs: int | None = None,
          verbose: bool = False) -> kernelfetch.KernelFiles:
    """The kernel of RECIPE, from the cache or built now (minutes) and cached. Its modules
    directory holds only modules.builtin and aliases: everything is built in."""
    images = image_dir(cache, recipe.key())
    if not _intact(images):
        for tool in BUILD_TOOLS:  # one clear line now rather than a shell error minutes in
            proc.find_tool(tool)
        out = cache / "minikernel" / f"out-{recipe.source_key()}"
        # one build at a time in a source's shared object tree; a second waits, saying so,
        # and then finds the image built (or builds its own recipe from the warm tree)
        with locked(out.with_name(f".{out.name}.lock"), f"another build is compiling a minimal kernel in {out}"):
            if not _intact(images):
                tree = patched_tree(source, recipe.patch, cache, recipe.source_key())
                out.mkdir(parents=True, exist_ok=True)
                removed = _configure(recipe, tree, out, verbose)
                target = "vmlinux" if recipe.compression == "none" else "bzImage"
                started = time.monotonic()
                _make(tree, out, [f"-j{jobs or os.cpu_count() or 1}", target], verbose, timeout=4 * 3600)
                _collect(recipe, out, images, time.monotonic() - started, removed)
    release = (images / "release").read_text().strip()
    return kernelfetch.KernelFiles(images / "image", images / "modules" / release, release, images)


def _intact(images: Path) -> bool:
    """A finished image folder whose image still matches its seal (else: build again,
    an incremental build from the cached object tree)."""
    if not (images / kernelfetch.MARKER).is_file() or not sealed(images):
        return False
    why = unsealed_change(images, images / "image")
    if why is not None:
        print(f"  note: cached minimal kernel {images.name} is damaged ({why}): building it again", file=sys.stderr)
    return why is None


def _make(tree: Path, out: Path, args: list[str], verbose: bool, timeout: float = 600) -> str:
    argv = ["make", "-C", str(tree), f"O={out}", *([] if verbose else ["-s"]), *_compiler(), *args]
    env = {**os.environ, **_BUILD_ENV, "CCACHE_DIR": str(kernelfetch.cache_dir() / "ccache"), "CCACHE_MAXSIZE": "2G"}
    if verbose:  # the user asked to see the build as it goes
        done = proc.run(argv, env=env, timeout=timeout, check=False, capture=False)
        if done.returncode != 0:
            raise KernelError(f"make {' '.join(args)} failed with exit code {done.returncode} (output above)")
        return ""
    try:
        return proc.run(argv, env=env, timeout=timeout).stdout
    except ToolFailed as exc:
        tail = "\n".join(exc.stderr.strip().splitlines()[-15:])
        raise KernelError(f"make {' '.join(args)} failed in {tree}:\n{tail}\n"
                          "(the compiler's last lines above; rerun with -v for the whole build)") from None


def _compiler() -> list[str]:
    """CC through ccache when it is installed: kernels that differ in a few symbols (tune
    --kconfig) rebuild from the cache what they share. Kbuild records each object's
    command line, so the choice must stay the same from build to build: it follows
    whether ccache is there."""
    ccache = shutil.which("ccache")
    return [f"CC={ccache} gcc"] if ccache else []


def _configure(recipe: Recipe, tree: Path, out: Path, verbose: bool) -> list[str]:
    """tinyconfig, our symbols over it, olddefconfig; then check nothing asked was dropped
    (a recipe that disables symbols may lose what depends on them: returned, not an error)."""
    _make(tree, out, [recipe.kconfig_base], verbose)
    asked = recipe.asked()
    config = out / ".config"
    atomic_write(config, kconfig.overlay(config.read_text(), asked).encode())
    _make(tree, out, ["olddefconfig"], verbose)
    resolved = kconfig.parse(config.read_text(), str(config))
    lost = kconfig.dropped(asked, resolved)
    if lost and recipe.disabled:
        return sorted(d.symbol for d in lost)
    if lost:  # now read what the lost symbols depend on, to say so
        texts = {str(p): p.read_text(errors="replace") for p in _kconfig_files(tree, lost)}
        lost = kconfig.dropped(asked, resolved, texts)
        raise KernelError(f"kconfig dropped what the fragments ask for: {kconfig.explain(lost)}; "
                          "add what they depend on to a fragment in recipes/kernel/minimal/")
    return []


def _kconfig_files(tree: Path, lost: list[kconfig.Dropped]) -> list[Path]:
    """The Kconfig files that define the lost symbols (found with grep: there are ~1,700)."""
    pattern = "|".join(d.symbol for d in lost)
    try:
        found = proc.run(["grep", "-rlE", "--include=Kconfig*", f"^\\s*(menu)?config ({pattern})\\s*$", str(tree)])
    except ToolFailed:
        return []
    return [Path(line) for line in found.stdout.splitlines()]


def _collect(recipe: Recipe, out: Path, images: Path, seconds: float, removed: list[str] | None = None) -> None:
    tmp = Path(tempfile.mkdtemp(dir=images.parent, prefix=".img-"))
    try:
        if recipe.compression == "none":
            proc.run(["objcopy", "--strip-all", str(out / "vmlinux"), str(tmp / "image")])
        else:
            shutil.copyfile(out / "arch" / "x86" / "boot" / "bzImage", tmp / "image")
        for name in ("vmlinux", "System.map", ".config"):
            shutil.copyfile(out / name, tmp / name.lstrip("."))
        release = (out / "include" / "config" / "kernel.release").read_text().strip()
        (tmp / "release").write_text(release + "\n")
        _module_index(out, tmp / "modules" / release)
        (tmp / "build-seconds").write_text(f"{seconds:.1f}\n")
        (tmp / "kconfig-removed").write_text("".join(f"{s}\n" for s in removed or []))  # dependents of `disabled`
        seal(tmp)
        (tmp / kernelfetch.MARKER).write_text(recipe.key() + "\n")
        shutil.rmtree(images, ignore_errors=True)
        os.rename(tmp, images)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _module_index(out: Path, moddir: Path) -> None:
    """A module index for a kernel without modules: template rules that name a built-in
    driver (or one of its aliases) are then satisfied, and any other rule fails clearly."""
    moddir.mkdir(parents=True)
    builtin = out / "modules.builtin"
    (moddir / "modules.builtin").write_text(builtin.read_text() if builtin.is_file() else "")
    modinfo = out / "modules.builtin.modinfo"
    aliases = builtin_aliases(modinfo.read_bytes() if modinfo.is_file() else b"")
    (moddir / "modules.alias").write_text("".join(f"alias {a} {m}\n" for a, m in aliases))
    for name in ("modules.dep", "modules.softdep"):
        (moddir / name).write_text("")


def builtin_aliases(modinfo: bytes) -> list[tuple[str, str]]:
    """(alias, module) pairs from modules.builtin.modinfo: NUL-separated `module.key=value`."""
    pairs = []
    for field in modinfo.split(b"\0"):
        module, _, rest = field.decode(errors="replace").partition(".")
        key, _, value = rest.partition("=")
        if key == "alias" and module and value:
            pairs.append((value, module))
    return pairs


def system_map(kernel_facts: dict[str, Any], cache: Path | None = None) -> Path | None:
    """The System.map of a bundle built on the minimal kernel (from the cache), if any
    (KERNEL_FACTS: Bundle.kernel_facts)."""
    recipe = kernel_facts.get("recipe")
    if not recipe:
        return None
    path = image_dir(cache or kernelfetch.cache_dir(), str(recipe)) / "System.map"
    return path if path.is_file() else None


def initcall_symbols(tree: Path, functions: list[str]) -> dict[str, str | None]:
    """For each initcall function, the CONFIG_ symbol whose object defines it in the
    source TREE (grep for its `__init` definition, then its folder's Makefile), or None
    when it is always built or was not found: the candidates `tune --kconfig` can try."""
    out: dict[str, str | None] = {}
    for fn in functions:
        try:
            found = proc.run(["grep", "-rlE", "--include=*.c", rf"\b__init\b.*\b{re.escape(fn)}\s*\(", str(tree)],
                             timeout=120).stdout.split()
        except ToolFailed:
            found = []
        symbol = None
        for source in map(Path, found):
            makefile = source.parent / "Makefile"
            if makefile.is_file():
                symbol = kconfig.makefile_symbol(makefile.read_text(errors="replace"), source.with_suffix(".o").name)
                if symbol:
                    break
        out[fn] = symbol
    return out


def export_tag(repo: Path, tag: str, cache: Path) -> tuple[Path, str]:
    """The source tree of TAG (any commit-ish) of the git repository REPO, exported once
    into the cache (named by its commit) for `appliance range --git`; with its identity
    for a recipe, as own_source gives one."""
    try:
        commit = proc.run(["git", "-C", str(repo), "rev-parse", "--verify", f"{tag}^{{commit}}"], timeout=60).stdout.strip()
    except ToolFailed:
        raise KernelError(f"{repo} has no commit {tag!r}: name a tag, branch or commit of it") from None
    target = cache / "sources" / f"git-{commit[:16]}"
    if not (target / kernelfetch.MARKER).is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".git-"))
        try:
            archive = tmp / "tree.tar"
            proc.run(["git", "-C", str(repo), "archive", "--format=tar", "-o", str(archive), commit], timeout=1800)
            (tmp / "tree").mkdir()
            proc.run(["tar", "-xf", str(archive), "-C", str(tmp / "tree")], timeout=1800)
            archive.unlink()
            (tmp / "tree" / kernelfetch.MARKER).write_text(f"{tag} {commit}\n")
            shutil.rmtree(target, ignore_errors=True)
            (tmp / "tree").rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    tree, _ = own_source(target)
    return tree, f"git:{commit}"
