"""docs/tables.md describes exactly the tables schemas/tables.py defines."""
import re
from pathlib import Path

from schemas.tables import DEVICE_COLUMNS, ORIGIN_COLUMNS, RECORD_COLUMNS, SCORE_COLUMNS, TABLES

DOC = (Path(__file__).resolve().parents[2] / "docs" / "tables.md").read_text(encoding="utf-8")
GROUPS = {"origin group": ORIGIN_COLUMNS, "record group": RECORD_COLUMNS, "score group": SCORE_COLUMNS,
          "device group": DEVICE_COLUMNS}


def _sections() -> dict[str, str]:
    """Table name -> the text of its ``### `name` — ...`` section."""
    parts = re.split(r"^#{2,3} ", DOC, flags=re.M)
    found = {}
    for part in parts:
        match = re.match(r"`(\w+)` —", part)
        if match:
            found[match.group(1)] = part
    return found


def _named(text: str) -> set[str]:
    return set(re.findall(r"`(\w+)`", text))


def _group_table(title: str) -> str:
    return DOC.split(f"**{title}**", 1)[1].split("\n\n**", 1)[0].split("\n## ", 1)[0]


def test_every_table_has_a_section_and_every_section_a_table() -> None:
    assert set(_sections()) == set(TABLES)


def test_every_column_of_every_table_is_described() -> None:
    sections = _sections()
    for name, spec in TABLES.items():
        text = sections[name]
        if "same columns as `flows_scored`" in text:
            text += sections["flows_scored"]
        named = _named(text)
        for group, columns in GROUPS.items():
            if group in text:
                named |= {c.name for c in columns}
        missing = [c for c in spec.column_names if c not in named]
        assert not missing, f"docs/tables.md does not describe {name}.{missing}"


def test_the_column_tables_name_only_columns_that_exist() -> None:
    for name, text in _sections().items():
        for row in re.findall(r"^\| (`[^|]+`) \|", text, flags=re.M):
            for column in re.findall(r"`(\w+)`", row):
                assert column in TABLES[name].column_names, f"docs/tables.md: {name} has no column {column}"


def test_the_shared_groups_list_their_columns() -> None:
    record, scores, device = _named(_group_table("Record")), _named(_group_table("Scores")), _named(_group_table("Device"))
    assert {c.name for c in RECORD_COLUMNS} <= record
    assert {c.name for c in SCORE_COLUMNS} <= scores
    assert {c.name for c in DEVICE_COLUMNS} <= device
