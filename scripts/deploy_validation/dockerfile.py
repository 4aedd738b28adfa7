"""The Dockerfile: hadolint, and every path and name it relies on."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

from .report import Report, run, tool


def dockerignore_patterns(root: Path) -> list[str]:
    path = root / ".dockerignore"
    if not path.exists():
        return []
    return [
        line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]


def ignored(path: str, patterns: list[str]) -> bool:
    hit = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        bare = pattern[3:] if pattern.startswith("**/") else pattern
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(
            fnmatch.fnmatchcase(prefix, pattern) or fnmatch.fnmatchcase(prefix, bare) for prefix in prefixes
        ):
            hit = not negate
    return hit


def validate_dockerfile(root: Path, report: Report) -> None:
    report.section("Dockerfile")
    dockerfile = root / "Dockerfile"
    result = run(
        [tool("SCIMFLOW_HADOLINT"), "--no-color", "--config", str(root / ".hadolint.yaml"), str(dockerfile)]
    )
    report.check(result.returncode == 0, "hadolint Dockerfile", (result.stdout + result.stderr).strip())
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    patterns = dockerignore_patterns(root)
    stages: list[str] = []
    copied: set[str] = set()
    for line in text.splitlines():
        line = line.strip()
        if line.upper().startswith("FROM "):
            alias = re.search(r"\bAS\s+(\S+)", line, re.I)
            stages.append(alias.group(1) if alias else "")
        elif line.upper().startswith("COPY "):
            words = line.split()[1:]
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            source_stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
            if source_stage:
                report.check(
                    source_stage in stages[:-1], f"COPY --from={source_stage} names an earlier stage"
                )
                continue
            for source in paths[:-1]:
                exists = (root / source).exists()
                excluded = ignored(source.rstrip("/"), patterns)
                report.check(
                    exists and not excluded,
                    f"COPY {source} exists in the build context",
                    "missing" if not exists else "excluded by .dockerignore",
                )
                copied.add(source.rstrip("/"))
    workspace = tomllib.loads((root / "Cargo.toml").read_text())["workspace"]
    missing = [m for m in workspace["members"] if m not in copied]
    report.check(
        not missing, "every workspace member is copied (cargo loads them all)", f"not copied: {missing}"
    )
    build = re.search(r"cargo build[^&\n]*-p\s+(\S+)[^&\n]*--bin\s+(\S+)", text)
    if report.check(build is not None, "the build stage runs cargo build -p PACKAGE --bin BINARY"):
        package, binary = build.groups()
        manifests = {
            tomllib.loads(p.read_text()).get("package", {}).get("name"): p for p in root.glob("*/Cargo.toml")
        }
        manifest = manifests.get(package)
        bins = {b["name"] for b in tomllib.loads(manifest.read_text()).get("bin", [])} if manifest else set()
        report.check(
            binary in bins,
            f"package {package} builds the binary {binary}",
            f"package {package!r} not found" if not manifest else f"its binaries: {sorted(bins)}",
        )
        report.check(f"target/release/{binary}" in text, f"the runtime stage takes target/release/{binary}")
