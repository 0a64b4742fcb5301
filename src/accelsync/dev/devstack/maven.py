"""Server jars from Maven Central, fetched once into a cache accelsync owns, then used offline.

Kafka, HBase and Druid are Java servers published to Maven Central. devstack resolves each one's
artifacts with their runtime dependencies into `<cache>/<name>-<version>/lib/` by running Maven
(`dependency:copy-dependencies` over a generated pom), showing progress as it downloads. A
finished fetch leaves a marker holding the pom's digest: the next start finds it and runs no
Maven at all, so it is offline and fast; a changed artifact list (a version bump) fetches again.

The cache is `$ACCELSYNC_MAVEN_CACHE`, else `$XDG_CACHE_HOME/accelsync/maven` (default
`~/.cache/accelsync/maven`): shared by every checkout on the machine, so work trees and test
sessions do not download the same servers twice. Maven's own repository lives inside it too.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from accelsync.dev.devstack.process import DevstackError, apt_install, find_binary, tail

MARKER = ".complete"
CENTRAL = "https://repo.maven.apache.org/maven2"
# Every repository a dependency's pom declares (Druid's parent names Confluent's, MuleSoft's and
# Apache's snapshots) is read through Maven Central: the only registry these machines reach, and
# no time lost on hosts that do not resolve.
SETTINGS = ("<settings><mirrors><mirror><id>accelsync-central</id><mirrorOf>*</mirrorOf>"
            f"<url>{CENTRAL}</url></mirror></mirrors></settings>\n")
# Maven prints one such line per file it downloads; we turn them into a short progress report.
_DOWNLOADED = re.compile(r"Downloaded from \S+: (\S+) \(([\d.]+) ([kMG]?B)")
_UNITS = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}


def cache_root() -> Path:
    explicit = os.environ.get("ACCELSYNC_MAVEN_CACHE")
    if explicit:
        return Path(explicit).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser().absolute() / "accelsync" / "maven"


@dataclass(frozen=True)
class Artifact:
    """One Maven coordinate `group:artifact:version[:type[:classifier]]`, with exclusions
    (`group:artifact`, `*` allowed) of dependencies the server does not need at run time."""

    coordinate: str
    exclusions: tuple[str, ...] = ()

    def xml(self) -> str:
        parts = self.coordinate.split(":")
        if len(parts) < 3:
            raise ValueError(f"{self.coordinate!r} is not group:artifact:version")
        group, artifact, version = parts[:3]
        lines = [f"<groupId>{escape(group)}</groupId>", f"<artifactId>{escape(artifact)}</artifactId>",
                 f"<version>{escape(version)}</version>"]
        if len(parts) > 3 and parts[3]:
            lines.append(f"<type>{escape(parts[3])}</type>")
        if len(parts) > 4 and parts[4]:
            lines.append(f"<classifier>{escape(parts[4])}</classifier>")
        if self.exclusions:
            excluded = "".join(
                f"<exclusion><groupId>{escape(g)}</groupId><artifactId>{escape(a)}</artifactId></exclusion>"
                for g, a in (e.split(":", 1) for e in self.exclusions))
            lines.append(f"<exclusions>{excluded}</exclusions>")
        return "<dependency>" + "".join(lines) + "</dependency>"


@dataclass(frozen=True)
class Bundle:
    """A server's jars: a name and version for the folder, the artifacts, and pinned versions
    (`dependencyManagement`) where the server's own build pins what Maven would resolve
    differently."""

    name: str
    version: str
    artifacts: tuple[Artifact, ...]
    managed: tuple[str, ...] = field(default=())

    @property
    def folder(self) -> Path:
        return cache_root() / f"{self.name}-{self.version}"

    @property
    def lib(self) -> Path:
        return self.folder / "lib"

    def pom(self) -> str:
        managed = "".join(Artifact(c).xml() for c in self.managed)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
            "  <modelVersion>4.0.0</modelVersion>\n"
            f"  <groupId>accelsync.dev.devstack</groupId><artifactId>{escape(self.name)}-server</artifactId>"
            f"<version>{escape(self.version)}</version><packaging>pom</packaging>\n"
            f"  <dependencyManagement><dependencies>{managed}</dependencies></dependencyManagement>\n"
            f"  <dependencies>{''.join(a.xml() for a in self.artifacts)}</dependencies>\n"
            "</project>\n")

    def digest(self) -> str:
        return hashlib.sha256(self.pom().encode()).hexdigest()

    def ready(self) -> bool:
        marker = self.lib / MARKER
        return marker.exists() and marker.read_text().strip() == self.digest()

    def classpath(self) -> str:
        """Every jar of the bundle, for `java -cp`."""
        return os.pathsep.join(str(p) for p in sorted(self.lib.glob("*.jar")))


def fetch(bundle: Bundle, log_file: Path, quiet: bool = False) -> Path:
    """Make `bundle.lib` hold the bundle's jars; download them on the first call. Returns the folder.

    Serialised across processes by a lock in the cache, so parallel test sessions fetch once.
    """
    if bundle.ready():
        return bundle.lib
    bundle.folder.mkdir(parents=True, exist_ok=True)
    with open(bundle.folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if bundle.ready():  # another process fetched it while we waited
            return bundle.lib
        _run_maven(bundle, log_file, quiet)
    return bundle.lib


def _maven() -> str:
    found = find_binary("mvn")
    if found:
        return found
    apt_install("maven", Path(cache_root()) / "install.log")
    found = find_binary("mvn")
    if not found:
        raise DevstackError("the Debian package maven is installed but `mvn` is still not on PATH")
    return found


def _run_maven(bundle: Bundle, log_file: Path, quiet: bool) -> None:
    (bundle.folder / "pom.xml").write_text(bundle.pom())
    (bundle.folder / "settings.xml").write_text(SETTINGS)
    staging = bundle.folder / "lib.partial"
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [_maven(), "-B", "-f", str(bundle.folder / "pom.xml"), "-s", str(bundle.folder / "settings.xml"),
           f"-Dmaven.repo.local={cache_root() / 'repository'}",
           "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies",
           f"-DoutputDirectory={staging}", "-DincludeScope=runtime", "-Dmdep.useRepositoryLayout=false"]
    say = (lambda text: None) if quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    say(f"devstack: fetching {bundle.name} {bundle.version} from Maven Central into {bundle.folder} "
        f"(first start only; log: {log_file})")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    files, size, shown, started = 0, 0.0, time.monotonic(), time.monotonic()
    with open(log_file, "a", encoding="utf-8") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                cwd=bundle.folder)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            match = _DOWNLOADED.search(line)
            if match and match.group(1).endswith(".jar"):
                files += 1
                size += float(match.group(2)) * _UNITS.get(match.group(3), 1)
                if time.monotonic() - shown > 5:
                    shown = time.monotonic()
                    say(f"devstack: {bundle.name}: {files} jars, {size / 1e6:.0f} MB so far "
                        f"({shown - started:.0f} s)")
        code = proc.wait()
    if code:
        raise DevstackError(f"Maven could not fetch {bundle.name} {bundle.version} (exit {code}); "
                            f"{log_file} ends:\n{tail(log_file, 30)}")
    shutil.rmtree(bundle.lib, ignore_errors=True)
    staging.rename(bundle.lib)
    (bundle.lib / MARKER).write_text(bundle.digest() + "\n")
    jars = len(list(bundle.lib.glob("*.jar")))
    say(f"devstack: {bundle.name} {bundle.version}: {jars} jars ready ({time.monotonic() - started:.0f} s)")
