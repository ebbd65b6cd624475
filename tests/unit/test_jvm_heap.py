"""The soak reads a JVM's live heap by class (jcmd GC.class_histogram) and names what grew."""
from jobs.bench.jvm_heap import ClassUse, largest_growth, parse_class_histogram, total_mib

EARLY = """12345:
 num     #instances         #bytes  class name (module)
-------------------------------------------------------
   1:        200000       20971520  [B (java.base@17.0.13)
   2:         10000        1048576  org.apache.spark.sql.execution.ui.SQLExecutionUIData
   3:           500          10000  java.lang.String (java.base@17.0.13)
Total        210500       22030096
"""
LATE = """12345:
 num     #instances         #bytes  class name (module)
-------------------------------------------------------
   1:        210000       22020096  [B (java.base@17.0.13)
   2:        100000       10485760  org.apache.spark.sql.execution.ui.SQLExecutionUIData
   3:           400           8000  java.lang.String (java.base@17.0.13)
   4:            10           1024  io.delta.New
Total        310410       32514880
"""


def test_a_histogram_is_read_by_class() -> None:
    histogram = parse_class_histogram(EARLY)
    assert histogram["[B"] == ClassUse(200000, 20971520)
    assert histogram["org.apache.spark.sql.execution.ui.SQLExecutionUIData"].instances == 10000
    assert len(histogram) == 3  # the Total line is not a class
    assert total_mib(histogram) == round(22030096 / 2**20, 1)


def test_growth_lists_the_classes_that_grew_most_first_and_none_that_shrank() -> None:
    rows = largest_growth(parse_class_histogram(EARLY), parse_class_histogram(LATE))
    assert [row["class"] for row in rows] == ["org.apache.spark.sql.execution.ui.SQLExecutionUIData", "[B", "io.delta.New"]
    assert rows[0]["mib_before"] == 1.0 and rows[0]["mib_after"] == 10.0
    assert rows[2]["instances_before"] == 0 and rows[2]["instances_after"] == 10
