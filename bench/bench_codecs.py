"""JSON codec benchmark: sansnet.json_encode / json_decode against raw orjson with the same
options and against the standard library's json, on three payloads.

    python bench/bench_codecs.py

Targets (issue #2): the wrapper costs at most 10% over raw orjson on the small dict, and
json_encode is at least 5x stdlib json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import fmt_time, machine, per_call, table

import sansnet

OPTIONS = orjson.OPT_SORT_KEYS


def payloads() -> dict[str, object]:
    small = {  # a typical API object: a user record, ~1 KB of JSON
        "login": "lune-dev",
        "id": 1234567,
        "node_id": "MDQ6VXNlcjEyMzQ1Njc=",
        "avatar_url": "https://example.invalid/u/1234567?v=4",
        "gravatar_id": "",
        "url": "https://api.example.invalid/users/lune-dev",
        "html_url": "https://example.invalid/lune-dev",
        "followers_url": "https://api.example.invalid/users/lune-dev/followers",
        "type": "User",
        "site_admin": False,
        "name": "Lune Developer",
        "company": None,
        "blog": "https://lune.example.invalid",
        "location": "Stockholm",
        "email": None,
        "hireable": True,
        "bio": "Writes networking code.",
        "public_repos": 42,
        "public_gists": 3,
        "followers": 1024,
        "following": 12,
        "created_at": "2015-03-14T09:26:53Z",
        "updated_at": "2026-11-26T10:00:00Z",
        "plan": {"name": "pro", "space": 976562499, "collaborators": 0, "private_repos": 9999},
        "scores": [98.5, 87.25, 1.0, 0.0, -3.5],
        "tags": ["http", "websocket", "json", "url"],
    }
    tiny = {
        "id": 12345,
        "name": "sansnet",
        "active": True,
        "score": 98.5,
        "tags": ["http", "websocket", "json"],
        "owner": {"login": "lune", "id": 7},
        "created": "2026-11-26T10:00:00Z",
        "count": None,
    }
    big = [dict(small, id=i, followers=i * 7) for i in range(900)]  # ~1 MB
    unicode_heavy = {
        f"ключ-{i}": ["日本語のテキスト🚀" * 4, "Ελληνικά κείμενο", "emoji 😀😃😄😁", i]
        for i in range(200)
    }
    return {
        "tiny dict": tiny,
        "small dict (~1 KB)": small,
        "1 MB list of dicts": big,
        "unicode-heavy": unicode_heavy,
    }


def main() -> None:
    print(f"# JSON codecs — {machine()}, orjson {orjson.__version__}")
    enc_rows, dec_rows = [], []
    for name, value in payloads().items():
        size = len(orjson.dumps(value))
        text = sansnet.json_encode(value)
        raw = orjson.dumps(value, option=OPTIONS)
        ours = per_call(lambda: sansnet.json_encode(value))
        raw_bytes = per_call(lambda: orjson.dumps(value, option=OPTIONS))
        raw_str = per_call(lambda: orjson.dumps(value, option=OPTIONS).decode())
        std = per_call(lambda: json.dumps(value, sort_keys=True, ensure_ascii=False))
        enc_rows.append(
            [
                name,
                f"{size:,} B",
                fmt_time(ours),
                fmt_time(raw_bytes),
                fmt_time(raw_str),
                fmt_time(std),
                f"{ours / raw_bytes:.2f}x",
                f"{ours / raw_str:.2f}x",
                f"{std / ours:.1f}x",
            ]
        )
        ours_d = per_call(lambda: sansnet.json_decode(text))
        raw_d = per_call(lambda: orjson.loads(raw))
        std_d = per_call(lambda: json.loads(text))
        dec_rows.append(
            [
                name,
                fmt_time(ours_d),
                fmt_time(raw_d),
                fmt_time(std_d),
                f"{ours_d / raw_d:.2f}x",
                f"{std_d / ours_d:.1f}x",
            ]
        )
    print(
        table(
            "json_encode (str out, keys sorted)",
            [
                "payload",
                "size",
                "sansnet",
                "orjson bytes",
                "orjson+decode",
                "stdlib",
                "cost vs orjson bytes",
                "cost vs orjson str",
                "speed-up vs stdlib",
            ],
            enc_rows,
        )
    )
    print(
        table(
            "json_decode",
            ["payload", "sansnet", "orjson", "stdlib", "cost vs orjson", "speed-up vs stdlib"],
            dec_rows,
        )
    )


if __name__ == "__main__":
    main()
