"""Check results, and the tools and files the checks use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml


class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, ok: bool, what: str, why: str = "") -> bool:
        if ok:
            self.passed += 1
            print(f"ok   {what}")
        else:
            self.failed += 1
            print(f"FAIL {what}{': ' + why if why else ''}")
        return ok

    def section(self, title: str) -> None:
        print(f"\n== {title}")


def run(command: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, input=stdin, capture_output=True, text=True)


def tool(name: str) -> str:
    path = os.environ.get(name)
    if not path:
        sys.exit(f"{name} is not set: run scripts/validate-deploy.sh, which installs the tools")
    return path


def load_yaml_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
