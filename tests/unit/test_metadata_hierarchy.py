"""The asset hierarchy as data (hub.web.metadata_service): the tree with device counts, the
overview's place choices and what is at a place."""

from __future__ import annotations

from hub.web.metadata_service import at_place, hierarchy_tree, place_choices, place_key

PLACES = [
    ("plant-a", "Forming", "Line 1", "P-100"),
    ("plant-a", "Forming", "Line 1", ""),
    ("plant-a", "", "", ""),
    ("plant-b", "Forming", "Line 2", ""),
]


def test_the_tree_counts_devices_at_every_level() -> None:
    tree = hierarchy_tree(PLACES)
    assert [(s.name, s.devices) for s in tree] == [("plant-a", 3), ("plant-b", 1)]
    forming = tree[0].children["Forming"]
    assert (forming.devices, forming.children["Line 1"].devices) == (2, 2)
    assert forming.children["Line 1"].children["P-100"].devices == 1
    assert tree[0].to_json()["children"][0] == {
        "level": "area",
        "name": "",
        "devices": 1,
        "children": [
            {
                "level": "line",
                "name": "",
                "devices": 1,
                "children": [{"level": "machine", "name": "", "devices": 1, "children": []}],
            }
        ],
    }


def test_place_choices_and_matching() -> None:
    choices = place_choices(PLACES)
    labels = [label for label, _ in choices.values()]
    assert labels == ["Forming", "Forming > Line 1", "Forming > Line 1 > P-100", "Forming > Line 2"]
    assert place_key((None, None, None)) == "all"
    line_1 = choices[place_key(("Forming", "Line 1", None))][1]
    matching = [p for p in PLACES if at_place(p[1:], line_1)]
    assert matching == PLACES[:2]
    assert [p for p in PLACES if at_place(p[1:], ("", None, None))] == [PLACES[2]]
