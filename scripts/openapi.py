"""Write the gateway's OpenAPI document to docs/openapi.json, which the documentation's API page renders.

    .venv/bin/python scripts/openapi.py           # write it
    .venv/bin/python scripts/openapi.py --check   # exit 1, saying so, when the file differs from what the app produces

The document is the one the gateway serves at ``/openapi.json``, built from the app without starting it (no service,
cache or network is needed), written with sorted keys and a final newline so that it changes only when the API does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "docs" / "openapi.json"


def document() -> str:
    """The gateway's OpenAPI document as the file holds it."""
    sys.path.insert(0, str(ROOT))
    from chorus.services.gateway.app import create_app
    from chorus.services.gateway.settings import Settings

    schema = create_app(Settings()).openapi()
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    text = document()
    if args.check:
        if not DOCUMENT.exists() or DOCUMENT.read_text(encoding="utf-8") != text:
            print(f"{DOCUMENT.relative_to(ROOT)} differs from the gateway's API: run python scripts/openapi.py")
            return 1
        print(f"{DOCUMENT.relative_to(ROOT)} matches the gateway's API")
        return 0
    DOCUMENT.write_text(text, encoding="utf-8")
    print(f"wrote {DOCUMENT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
