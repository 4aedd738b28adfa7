"""What the scimflow Rust sources define: subcommands, environment variables, metrics, and how
the long-running roles stop. The deployment artifacts may only use what is found here."""

from __future__ import annotations

import re
from pathlib import Path

# Roles whose stop request comes from cli/src/shutdown.rs (Ctrl-C or SIGTERM). The API roles
# leave signals to actix, which drains in-flight requests on SIGTERM.
SHUTDOWN_ROLES = {"projector", "fanout"}
SHUTDOWN_SOURCE = "cli/src/shutdown.rs"
# The stop waits for the work in flight: the projector's round (fold, publish, commit; one Kafka
# call may take up to 30 s, projector/src/kafka/worker.rs KAFKA_CALL_TIMEOUT) and fanout's
# webhook requests (10 s timeout by default). Less grace than this and the runtime's SIGKILL may
# cut them off.
MIN_STOP_GRACE_SECONDS = {"projector": 60, "fanout": 30}


class Code:
    """What the scimflow sources define: subcommands, environment variables, metrics."""

    def __init__(self, root: Path) -> None:
        self.root = root
        sources = [p for p in root.rglob("*.rs") if "target" not in p.parts and ".git" not in p.parts]
        self.text = {p: p.read_text() for p in sources}
        self.subcommands = self._subcommands()
        self.env_vars = self._env_vars()
        self.metrics = self._metrics()
        self.stops_on_sigterm = self._stops_on_sigterm()

    def _subcommands(self) -> set[str]:
        main = (self.root / "cli/src/main.rs").read_text()
        block = re.search(r"enum Command \{(.*?)\n\}", main, re.S)
        names = re.findall(r"^    ([A-Z][A-Za-z]*)\b", block.group(1), re.M) if block else []
        return {re.sub(r"(?<!^)([A-Z])", r"-\1", name).lower() for name in names}

    def _env_vars(self) -> set[str]:
        names: set[str] = set()
        for text in self.text.values():
            names.update(re.findall(r'"(SCIMFLOW_[A-Z0-9_]+)"', text))
        return names

    def _stops_on_sigterm(self) -> bool:
        """Whether the projector and fanout stop request listens for SIGTERM (a container
        runtime's and the kubelet's stop signal), not only for Ctrl-C."""
        path = self.root / SHUTDOWN_SOURCE
        if not path.is_file():
            return False
        code = "\n".join(line.split("//")[0] for line in path.read_text().splitlines())
        return bool(re.search(r"signal\(\s*SignalKind::terminate\(\)\s*\)", code))

    def _metrics(self) -> dict[str, tuple[str, set[str]]]:
        """name -> (kind, labels), kind "histogram" or "other". Three ways the sources define a
        metric: directly (`Opts::new("name", ...)` / `HistogramOpts::new("name", ...)` and the
        label list that follows), through a constructor helper (`fn counter(name: &str, ...)`
        wrapping `Opts::new(name, ...)`, called as `counter("name", ...)`), and as a family of a
        hand-written Collector (a `("name", "help", by_label)` table, fanout/src/exporter.rs)."""
        metrics: dict[str, tuple[str, set[str]]] = {}
        for path, text in self.text.items():
            if "tests" in path.relative_to(self.root).parts:
                continue
            text = text.split("#[cfg(test)]")[0]
            metrics.update(_direct_metrics(text))
            metrics.update(_helper_metrics(text))
            metrics.update(_collector_families(text))
        return metrics

    def knows_env(self, name: str) -> bool:
        # SCIMFLOW_KAFKA_CLIENT_<KEY> is a passthrough of any librdkafka setting.
        return name in self.env_vars or name.startswith("SCIMFLOW_KAFKA_CLIENT_")


def _label_list(text: str) -> set[str] | None:
    match = re.search(r"&\[([^\]]*)\]", text)
    return set(re.findall(r'"([a-z_]+)"', match.group(1))) if match else None


def _call(text: str, open_paren: int) -> str:
    """The arguments of the call whose `(` is at `open_paren`, up to its matching `)`; string
    literals (help texts) may hold parentheses."""
    depth = 0
    index = open_paren
    while index < len(text):
        char = text[index]
        if char == '"':
            index += 1
            while index < len(text) and text[index] != '"':
                index += 2 if text[index] == "\\" else 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return text[open_paren + 1 : index]
        index += 1
    return text[open_paren + 1 :]


def _direct_metrics(text: str) -> dict[str, tuple[str, set[str]]]:
    found = {}
    # `IntCounterVec::new(Opts::new("name", "help"), &["label", ...])`: the label list is the
    # second argument of the call that wraps the options (none for a plain Histogram).
    pattern = r'(\(\s*)?(Histogram)?Opts::new\(\s*"(scimflow_[a-z0-9_]+)"'
    for match in re.finditer(pattern, text):
        kind = "histogram" if match.group(2) else "other"
        labels = _label_list(_call(text, match.start())) if match.group(1) else None
        found[match.group(3)] = (kind, labels or set())
    return found


def _helper_metrics(text: str) -> dict[str, tuple[str, set[str]]]:
    found = {}
    helpers = re.finditer(
        r"fn (\w+)\(name: &str, help: &str(, labels: &\[&str\])?\) -> (\w+) \{(.*?)\n\}", text, re.S
    )
    for helper in helpers:
        name, takes_labels, returns, body = helper.groups()
        if not re.search(r"Opts::new\(name", body):
            continue
        kind = "histogram" if "Histogram" in returns else "other"
        fixed_labels = set() if takes_labels else (_label_list(body) or set())
        for call in re.finditer(rf'\b{name}\(\s*"(scimflow_[a-z0-9_]+)"', text):
            labels = fixed_labels
            if takes_labels:
                labels = _label_list(_call(text, text.index("(", call.start()))) or set()
            found[call.group(1)] = (kind, labels)
    return found


def _collector_families(text: str) -> dict[str, tuple[str, set[str]]]:
    """`const FAMILIES: &[(&str, &str, bool)]`: (name, help, labelled by the one label the
    collector's descriptions name), and the `family(index, MetricType::...)` that emits it."""
    table = re.search(r"const FAMILIES: &\[\(&str, &str, bool\)\] = &\[(.*?)\n\];", text, re.S)
    if not table:
        return {}
    label = re.search(r'vec!\["([a-z_]+)"\.to_owned\(\)\]', text)
    entry = r'\(\s*"(scimflow_[a-z0-9_]+)",\s*"(?:[^"\\]|\\.)*",\s*(true|false),?\s*\)'
    entries = re.findall(entry, table.group(1))
    kinds = {int(i): k for i, k in re.findall(r"family\((\d+), MetricType::([A-Z]+)", text)}
    found = {}
    for index, (name, labelled) in enumerate(entries):
        kind = "histogram" if kinds.get(index) == "HISTOGRAM" else "other"
        labels = {label.group(1)} if labelled == "true" and label else set()
        found[name] = (kind, labels)
    return found
