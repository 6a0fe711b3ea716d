"""Java projects the onboarding tests build from source with javac (no binaries in git): a scorer model
with two dependency JARs and a data file, the same model merged into a fat JAR with a generated library of
1,500 classes, and a class compiled without ``-parameters``. Built once per source hash under
build/test-onboard (shared by concurrent sessions through a file lock)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build" / "test-onboard"
BUILD_VERSION = "1"  # part of the cache key: change it when the way JARs are written changes

SCORER_CLASS = "com.acme.scoring.RiskScorer"
LEGACY_CLASS = "com.acme.legacy.LegacyScorer"
MISSING_BASE = "net.mathlib.LinearModel"  # RiskScorer's superclass, in mathlib.jar
LIBRARY_CLASSES = 1500  # in the fat JAR: 1,200 in ai.bigstats (unknown to the ranking), 300 in com.fasterxml

# ----------------------------------------------------------------------------------------------- sources
MATHLIB = {
    "net/mathlib/LinearModel.java": """
package net.mathlib;

/** A base class models extend: loading a subclass needs this JAR. */
public abstract class LinearModel {
    protected double weigh(double[] xs, double[] ws) {
        double s = 0;
        for (int i = 0; i < xs.length; i++) s += xs[i] * ws[i];
        return s;
    }
}
""",
}
TEXTLIB = {
    "net/textlib/Cities.java": """
package net.textlib;

public final class Cities {
    private Cities() {}

    /** Used inside a method body only: the class loads without this JAR, a call needs it. */
    public static double factor(String city) { return city == null ? 0 : city.length() / 10.0; }
}
""",
}
SCORER = {
    "com/acme/scoring/Applicant.java": """
package com.acme.scoring;

public class Applicant {
    public double age;
    public String city;
}
""",
    "com/acme/scoring/Risk.java": """
package com.acme.scoring;

public class Risk {
    public double value;
    public String band;
}
""",
    "com/acme/scoring/Features.java": """
package com.acme.scoring;

/** A helper of the model's own (static): ranked after the model class. */
public final class Features {
    private Features() {}

    public static double normalize(double age) { return age / 100.0; }
}
""",
    "com/acme/scoring/RiskScorer.java": """
package com.acme.scoring;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import net.mathlib.LinearModel;
import net.textlib.Cities;

/** Reads its bias from bias.txt in the artifact folder; needs mathlib.jar (superclass) and textlib.jar. */
public class RiskScorer extends LinearModel {
    private final double bias;

    public RiskScorer(Path artifactDir) throws IOException {
        bias = Double.parseDouble(Files.readString(artifactDir.resolve("bias.txt")).trim());
    }

    public Risk score(Applicant a) {
        Risk r = new Risk();
        r.value = weigh(new double[] {a.age}, new double[] {0.01}) + Cities.factor(a.city) + bias;
        r.band = r.value > 1 ? "high" : "low";
        return r;
    }

    public double risk(double age, String city) { return score(applicant(age, city)).value; }

    private static Applicant applicant(double age, String city) {
        Applicant a = new Applicant();
        a.age = age;
        a.city = city;
        return a;
    }
}
""",
    "com/acme/scoring/cli/Main.java": """
package com.acme.scoring.cli;

public final class Main {
    public static void main(String[] args) { System.out.println("scorer"); }
}
""",
}
LEGACY = {
    "com/acme/legacy/Input.java": """
package com.acme.legacy;

public class Input {
    public double age;
}
""",
    "com/acme/legacy/LegacyScorer.java": """
package com.acme.legacy;

/** Compiled without -parameters: risk's parameters are arg0, arg1 in the class file. */
public class LegacyScorer {
    public double risk(double age, String city) { return age / 100.0 + city.length(); }

    public double scoreInput(Input in) { return in.age; }
}
""",
}


def library_sources() -> dict[str, str]:
    """A generated library: public classes with a public method each, in packages of 50 classes."""
    out: dict[str, str] = {}
    for i in range(LIBRARY_CLASSES):
        root = "ai/bigstats/gen" if i < 1200 else "com/fasterxml/gen"
        package = f"{root}/p{i // 50}"
        out[f"{package}/Stat{i}.java"] = (
            f"package {package.replace('/', '.')};\n\n"
            f"public class Stat{i} {{\n"
            f"    public double apply{i}(double x) {{ return x + {i}; }}\n"
            f"}}\n"
        )
    return out


# ----------------------------------------------------------------------------------------------- building
def javac() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "javac").is_file():
        return str(Path(home) / "bin" / "javac")
    found = shutil.which("javac")
    if not found:
        pytest.skip("javac not found")
    return found


def compile_classes(
    sources: dict[str, str], out: Path, *, parameters: bool = True, classpath: list[Path] | None = None
) -> Path:
    """``sources`` (relative path -> text) compiled in one javac run into the folder ``out``."""
    src = out.parent / (out.name + "-src")
    for rel, text in sources.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    out.mkdir(parents=True)
    files = out.parent / (out.name + "-files.txt")
    files.write_text("\n".join(str(src / rel) for rel in sources))
    cmd = [javac(), "--release", "17", "-nowarn", "-encoding", "UTF-8", "-d", str(out)]
    if parameters:
        cmd.append("-parameters")
    if classpath:
        cmd += ["-cp", os.pathsep.join(map(str, classpath))]
    subprocess.run([*cmd, f"@{files}"], check=True, capture_output=True, text=True)
    shutil.rmtree(src)
    files.unlink()
    return out


def write_jar(jar: Path, folder: Path, *, only: str = "", main_class: str | None = None) -> Path:
    """A JAR of the .class files of ``folder`` under the package path ``only`` (a manifest naming
    ``main_class`` if given)."""
    with zipfile.ZipFile(jar, "w", zipfile.ZIP_DEFLATED) as z:
        manifest = "Manifest-Version: 1.0\r\n" + (f"Main-Class: {main_class}\r\n" if main_class else "")
        z.writestr("META-INF/MANIFEST.MF", manifest + "\r\n")
        # sorted: in the fat JAR the generated library (ai/bigstats) comes before the model (com/acme)
        classes = sorted(folder.rglob("*.class"))
        for p in classes:
            rel = p.relative_to(folder).as_posix()
            if rel.startswith(only):
                z.write(p, rel)
    return jar


@dataclass(frozen=True)
class Projects:
    """The built JARs (in a cache folder shared across sessions: copy one before changing it)."""

    mathlib: Path  # net.mathlib.LinearModel
    textlib: Path  # net.textlib.Cities
    scorer: Path  # com.acme.scoring.* (needs both libraries)
    legacy: Path  # com.acme.legacy.* compiled without -parameters


@dataclass(frozen=True)
class FatJars:
    fat: Path  # scorer + both libraries + 1,500 generated library classes, no main class in the manifest
    fat_main: Path  # the same with Main-Class: com.acme.scoring.cli.Main


def build_projects() -> Projects:
    def build(tmp: Path) -> None:
        classes = compile_classes({**MATHLIB, **TEXTLIB, **SCORER}, tmp / "classes")
        write_jar(tmp / "mathlib.jar", classes, only="net/mathlib/")
        write_jar(tmp / "textlib.jar", classes, only="net/textlib/")
        write_jar(tmp / "scorer.jar", classes, only="com/acme/scoring/")
        write_jar(tmp / "legacy.jar", compile_classes(LEGACY, tmp / "legacy", parameters=False))
        shutil.rmtree(tmp / "classes")
        shutil.rmtree(tmp / "legacy")

    out = _cached("projects", (MATHLIB, TEXTLIB, SCORER, LEGACY), build)
    return Projects(*(out / f"{n}.jar" for n in ("mathlib", "textlib", "scorer", "legacy")))


def build_fat_jars() -> FatJars:
    """The scorer's fat JAR (one javac run of ~1,500 files, ~10-30 s the first time; cached after)."""

    def build(tmp: Path) -> None:
        classes = compile_classes({**MATHLIB, **TEXTLIB, **SCORER, **library_sources()}, tmp / "classes")
        write_jar(tmp / "fat.jar", classes)
        write_jar(tmp / "fat-main.jar", classes, main_class="com.acme.scoring.cli.Main")
        shutil.rmtree(tmp / "classes")

    out = _cached("fat", (MATHLIB, TEXTLIB, SCORER, {"library": str(LIBRARY_CLASSES)}), build)
    return FatJars(out / "fat.jar", out / "fat-main.jar")


def _cached(kind: str, sources: tuple[dict[str, str], ...], build: Callable[[Path], None]) -> Path:
    """A folder built by ``build`` once per content of ``sources`` (a lock serialises concurrent builds)."""
    h = hashlib.sha256(f"{kind} {BUILD_VERSION}".encode())
    for group in sources:
        for rel, text in sorted(group.items()):
            h.update(rel.encode() + b"\0" + text.encode() + b"\0")
    out = BUILD / f"{kind}-{h.hexdigest()[:12]}"
    if (out / "OK").is_file():
        return out
    BUILD.mkdir(parents=True, exist_ok=True)
    with open(BUILD / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / "OK").is_file():
            return out
        tmp = BUILD / f".tmp-{kind}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        build(tmp)
        (tmp / "OK").write_text("ok\n")
        shutil.rmtree(out, ignore_errors=True)
        os.rename(tmp, out)
    return out


def artifacts(folder: Path, bias: float) -> Path:
    """A data folder the scorer reads at load (bias.txt)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bias.txt").write_text(f"{bias}\n")
    return folder


def expected_risk(age: float, city: str, bias: float) -> float:
    return age * 0.01 + len(city) / 10.0 + bias
