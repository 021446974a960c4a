"""Fill in the ECS and IAM files: every ${NAME} in deploy/ecs/*.json and deploy/ecs/iam/*.json gets its value
from a values file (see values.env.example), and the results go to an output folder, ready for
`aws ecs register-task-definition --cli-input-json file://...` and the like.

    python deploy/ecs/render.py values.env build/ecs

A name without a value stops it with the names listed; nothing is written then.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def templates() -> list[Path]:
    return sorted(HERE.glob("*.json")) + sorted((HERE / "iam").glob("*.json"))


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def read_values(path: Path) -> dict[str, str]:
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Z][A-Z0-9_]*", name.strip()):
            raise SystemExit(f"{path}:{number}: expected NAME=value")
        values[name.strip()] = value.strip()
    return values


def render(text: str, values: dict[str, str]) -> str:
    """`text` with each ${NAME} replaced by its value, escaped for a JSON string."""
    return PLACEHOLDER.sub(lambda match: json.dumps(values[match.group(1)])[1:-1], text)


def render_all(values: dict[str, str]) -> dict[str, dict]:
    """Every template, filled in and parsed, by its path relative to deploy/ecs."""
    missing = sorted(set().union(*(placeholders(t.read_text()) for t in templates())) - set(values))
    if missing:
        raise SystemExit("no value for " + ", ".join(missing))
    return {str(t.relative_to(HERE)): json.loads(render(t.read_text(), values)) for t in templates()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("values", type=Path, help="NAME=value lines (see values.env.example)")
    parser.add_argument("output", type=Path, help="folder for the filled-in files")
    args = parser.parse_args()
    rendered = render_all(read_values(args.values))
    for name, document in rendered.items():
        target = args.output / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {len(rendered)} files to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
