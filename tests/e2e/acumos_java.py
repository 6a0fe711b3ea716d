"""An Acumos generic-java model as an Acumos user has it: model.jar (built here from source with javac),
model.proto and modelConfig.properties. Written like the Acumos runner's samples: static methods taking
the input rows as one String (CSV; a header line, when the runner sends one, is skipped) and returning a
List."""

from __future__ import annotations

import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.java_projects import _cached, compile_classes, write_jar

MODEL_CLASS = "org.acme.acumos.IrisScorer"

SOURCES = {
    "org/acme/acumos/IrisScorer.java": """
package org.acme.acumos;

import java.util.ArrayList;
import java.util.List;

/** Acumos generic-java style: each method takes the CSV rows (sepal_length,sepal_width,petal_length,petal_width). */
public class IrisScorer {
    public static List<Object> classify(String csv) {
        List<Object> out = new ArrayList<>();
        for (String[] row : rows(csv)) out.add(species(Double.parseDouble(row[2])));
        return out;
    }

    public static List<Object> shout(String csv) {
        List<Object> out = new ArrayList<>();
        for (String[] row : rows(csv)) out.add(species(Double.parseDouble(row[2])).toUpperCase());
        return out;
    }

    public static List<Object> count(String csv) {
        List<Object> out = new ArrayList<>();
        out.add(Integer.valueOf(rows(csv).size()));
        return out;
    }

    static String species(double petalLength) {
        return petalLength < 2.5 ? "setosa" : petalLength < 5 ? "versicolor" : "virginica";
    }

    /** The data lines: a header line (column names) and blank lines are skipped, as Acumos samples do. */
    static List<String[]> rows(String csv) {
        List<String[]> out = new ArrayList<>();
        for (String line : csv.split("\\n")) {
            String[] cells = line.split(",");
            if (cells.length >= 4 && isNumber(cells[2])) out.add(cells);
        }
        return out;
    }

    static boolean isNumber(String s) {
        try {
            Double.parseDouble(s);
            return true;
        } catch (NumberFormatException e) {
            return false;
        }
    }
}
""",
}

PROTO = textwrap.dedent("""\
    syntax = "proto3";
    package acme;

    message Row {
      double sepal_length = 1;
      double sepal_width = 2;
      double petal_length = 3;
      double petal_width = 4;
    }
    message DataFrame { repeated Row rows = 1; }
    message Species { repeated string species = 1; }
    message RowCount { int32 rows = 1; }

    service IrisScorer {
      rpc classify (DataFrame) returns (Species);
      rpc count (DataFrame) returns (RowCount);
      rpc predict (DataFrame) returns (Species);
    }
""")

# modelMethod in its single form: the method of every rpc without a method of its own (predict)
CONFIG = f"modelClassName={MODEL_CLASS}\nmodelMethod=classify\nmodelInputType=csv\n"


@dataclass(frozen=True)
class AcumosFiles:
    jar: Path
    proto: Path
    artifacts: Path  # holds modelConfig.properties


def model_jar() -> Path:
    """model.jar of IrisScorer (cached per source)."""

    def build(tmp: Path) -> None:
        write_jar(tmp / "model.jar", compile_classes(SOURCES, tmp / "classes"))
        shutil.rmtree(tmp / "classes")

    return _cached("acumos-java", (SOURCES,), build) / "model.jar"


def acumos_files(folder: Path, *, proto: str = PROTO, config: str = CONFIG) -> AcumosFiles:
    """The three files of an Acumos generic-java model in ``folder`` (the JAR copied from the cache)."""
    folder.mkdir(parents=True, exist_ok=True)
    jar = Path(shutil.copyfile(model_jar(), folder / "model.jar"))
    (folder / "model.proto").write_text(proto)
    (folder / "config").mkdir(exist_ok=True)
    (folder / "config" / "modelConfig.properties").write_text(config)
    return AcumosFiles(jar, folder / "model.proto", folder / "config")
