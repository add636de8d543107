"""What the recipe reports share: reading the JSON and JSONL files a recipe wrote. A missing or unreadable file is
None / no rows, so that a report says it is missing instead of failing."""

import json


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def metrics(path):
    rows = []
    try:
        with open(path) as f:
            for line in f:
                rows.append(json.loads(line))
    except (OSError, ValueError):
        pass
    return rows
