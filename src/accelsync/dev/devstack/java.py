"""What the Java servers (Kafka, HBase, Druid) share: a Java 17 runtime, jars from Maven Central,
and a JVM started detached with memory settings sized for a small machine."""

from __future__ import annotations

import os
from pathlib import Path

from accelsync.dev.devstack.maven import Bundle, fetch
from accelsync.dev.devstack.process import DevstackError, apt_install, find_binary, spawn_detached

JAVA_PACKAGE = "openjdk-17-jre-headless"
# Java 17 closed packages that Hadoop-era servers (HBase, Druid) still reach into.
OPENS = ["--add-opens=java.base/java.lang=ALL-UNNAMED", "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
         "--add-opens=java.base/java.nio=ALL-UNNAMED", "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
         "--add-opens=java.base/java.io=ALL-UNNAMED", "--add-opens=java.base/java.util=ALL-UNNAMED",
         "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
         "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
         "--add-opens=java.base/jdk.internal.misc=ALL-UNNAMED", "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
         "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED", "--add-exports=java.base/sun.nio.ch=ALL-UNNAMED",
         "--add-opens=java.management/sun.management=ALL-UNNAMED",
         "--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED"]
# Small, quick-starting JVMs: one GC thread pair, no JIT tiers beyond C1 for short-lived tools.
SMALL_JVM = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss1m", "-Djava.net.preferIPv4Stack=true"]


def java_binary() -> str:
    """`$JAVA_HOME/bin/java`, else `java` on PATH; installs Debian's Java 17 as root when missing."""
    home = os.environ.get("JAVA_HOME")
    if home and Path(home, "bin", "java").exists():
        return str(Path(home, "bin", "java"))
    found = find_binary("java")
    if found:
        return found
    from accelsync.dev.devstack.base import devstack_home
    devstack_home().mkdir(parents=True, exist_ok=True)
    apt_install(JAVA_PACKAGE, devstack_home() / "install.log")
    found = find_binary("java")
    if not found:
        raise DevstackError(f"{JAVA_PACKAGE} is installed but `java` is still not on PATH")
    return found


def ensure_jars(bundle: Bundle, log_file: Path) -> None:
    """Java present and the bundle's jars in the cache (the first call downloads them)."""
    java_binary()
    fetch(bundle, log_file)


def java_command(bundle: Bundle, main_class: str, args: list[str], jvm: list[str],
                 extra_classpath: list[str] | None = None) -> list[str]:
    """The command line that runs `main_class` of the bundle (`extra_classpath` first, e.g. a
    folder of configuration files the server looks up on its classpath)."""
    classpath = os.pathsep.join([*(extra_classpath or []), bundle.classpath()])
    return [java_binary(), *jvm, "-cp", classpath, main_class, *args]


def spawn_java(bundle: Bundle, main_class: str, args: list[str], jvm: list[str], log_file: Path,
               pid_file: Path, cwd: Path, extra_classpath: list[str] | None = None,
               env: dict[str, str] | None = None) -> int:
    """Start `main_class` of the bundle in its own session; returns the pid (also in `pid_file`)."""
    cmd = java_command(bundle, main_class, args, jvm, extra_classpath)
    return spawn_detached(cmd, log_file, pid_file, cwd=cwd, env=env)
