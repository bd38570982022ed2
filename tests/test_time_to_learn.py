"""Each lab's "Time to learn" line states its core path's time (live runs included) and its go-further time
apart, and the core paths of labs 00-05 fit a 90-minute workshop (issue 25; docs/workshop.md times them)."""
from __future__ import annotations

import json
import re

from reclaimlab import paths
from reclaimlab.notebook import gofurther

LABS = sorted(paths.labs_dir().glob("0[0-5]_*.ipynb"))
LINE = re.compile(r"^- \*\*Time to learn\*\*: (\d+) min core path \(live runs included\), (\d+) min go further$", re.M)
WORKSHOP_MIN = 90


def times(path) -> tuple[int, int]:
    """(core path, go further) minutes from the lab's one "Time to learn" line, on its core path."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    found = [m for c in cells if c["cell_type"] == "markdown" and not gofurther.is_go_further(c)
             for m in LINE.finditer("".join(c["source"]))]
    assert len(found) == 1, f"{path.name}: one line '- **Time to learn**: N min core path (live runs included), " \
                            f"M min go further' outside go-further cells, found {len(found)}"
    return int(found[0][1]), int(found[0][2])


def test_every_lab_states_its_core_path_and_go_further_times():
    for path in LABS:
        core, further = times(path)
        assert 0 < core <= 30 and further >= 0, (path.name, core, further)


def test_the_core_paths_fit_a_90_minute_workshop():
    per_lab = {p.stem[:2]: times(p)[0] for p in LABS}
    assert len(per_lab) == 6 and sum(per_lab.values()) <= WORKSHOP_MIN, per_lab


def test_the_workshop_agenda_gives_each_lab_its_core_path_time():
    """The 90-minute agenda's slot for a lab is no shorter than the lab says its core path takes."""
    text = (paths.labs_dir().parent / "docs" / "workshop.md").read_text(encoding="utf-8")
    agenda = text.split("### 90 minutes", 1)[1].split("###", 1)[0]
    for path in LABS:
        lab = path.stem[:2]
        row = re.search(rf"^\| (\d):(\d\d)–(\d):(\d\d) \| {lab} · ", agenda, re.M)
        assert row, f"the 90-minute agenda has no row for lab {lab}"
        h0, m0, h1, m1 = map(int, row.groups())
        assert (h1 * 60 + m1) - (h0 * 60 + m0) >= times(path)[0], f"lab {lab}: the agenda's slot is shorter"
    last = re.findall(r"^\| \d:\d\d–(\d):(\d\d) \|", agenda, re.M)[-1]
    assert int(last[0]) * 60 + int(last[1]) <= WORKSHOP_MIN
