"""The Dockerfile: hadolint, and every path and name it relies on."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import tempfile
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
    copies: list[tuple[str, str]] = []
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
                copies.append((source.rstrip("/"), paths[-1]))
    workspace = tomllib.loads((root / "Cargo.toml").read_text())["workspace"]
    missing = [m for m in workspace["members"] if m not in copied]
    report.check(
        not missing, "every workspace member is copied (cargo loads them all)", f"not copied: {missing}"
    )
    build = re.search(r"cargo build[^&\n]*-p\s+(\S+)[^&\n]*--bin\s+(\S+)", text)
    if report.check(build is not None, "the build stage runs cargo build -p PACKAGE --bin BINARY"):
        package, binary = build.groups()
        check_build_context(root, copies, patterns, package, binary, report)
        report.check(f"target/release/{binary}" in text, f"the runtime stage takes target/release/{binary}")


def check_build_context(
    root: Path, copies: list[tuple[str, str]], patterns: list[str], package: str, binary: str, report: Report
) -> None:
    """Lays out what the COPY instructions put into the build stage and asks cargo to load it:
    a file the build needs but the Dockerfile (or .dockerignore) leaves out fails here."""
    with tempfile.TemporaryDirectory() as context:
        workdir = Path(context)
        for source, destination in copies:
            target = workdir / destination
            if destination.endswith("/") or destination in (".", "./"):
                target = target / Path(source).name
            path = root / source

            def skip(directory: str, names: list[str]) -> set[str]:
                relative = Path(directory).relative_to(root)
                return {name for name in names if ignored(str(relative / name), patterns)}

            if path.is_dir():
                shutil.copytree(path, target, ignore=skip, dirs_exist_ok=True)
            elif path.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
        metadata = ["cargo", "metadata", "--no-deps", "--format-version", "1"]
        result = run([*metadata, "--manifest-path", str(workdir / "Cargo.toml")])
        if not report.check(
            result.returncode == 0,
            "cargo loads the workspace the Dockerfile copies",
            result.stderr.strip()[-600:],
        ):
            return
        packages = {p["name"]: p for p in json.loads(result.stdout)["packages"]}
        # `cargo build` refuses to start when a target file of any member is missing (a bench,
        # a test, build.rs), even of one it does not build. `cargo metadata` silently leaves
        # such targets out, so the manifests' explicit targets are checked here as well.
        missing = sorted(
            str(Path(t["src_path"]).relative_to(workdir))
            for p in packages.values()
            for t in p["targets"]
            if not Path(t["src_path"]).exists()
        )
        for p in packages.values():
            missing += missing_explicit_targets(Path(p["manifest_path"]), workdir)
        report.check(
            not missing, "every target file of the workspace is in the build stage", f"missing: {missing}"
        )
    bins = {t["name"] for t in packages.get(package, {}).get("targets", []) if "bin" in t["kind"]}
    report.check(
        binary in bins,
        f"package {package} builds the binary {binary}",
        f"package {package!r} not in the workspace"
        if package not in packages
        else f"its binaries: {sorted(bins)}",
    )


# Where cargo looks for a target declared without `path`.
DEFAULT_TARGET_DIRS = {"bench": "benches", "test": "tests", "example": "examples", "bin": "src/bin"}


def missing_explicit_targets(manifest: Path, workdir: Path) -> list[str]:
    package_dir = manifest.parent
    declared = tomllib.loads(manifest.read_text())
    missing = []
    for kind, directory in DEFAULT_TARGET_DIRS.items():
        for target in declared.get(kind, []):
            if "path" in target:
                candidates = [package_dir / target["path"]]
            else:
                base = package_dir / directory / target["name"]
                candidates = [base.with_suffix(".rs"), base / "main.rs"]
                if kind == "bin":
                    candidates.append(package_dir / "src/main.rs")
            if not any(candidate.exists() for candidate in candidates):
                missing.append(f"{candidates[0].relative_to(workdir)} ({kind} {target['name']})")
    return missing
