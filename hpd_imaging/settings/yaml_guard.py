"""YAML with a budget: refuse alias bombs ("billion laughs") quickly instead of expanding them.

Why not plain ``yaml.safe_load``: a 541-byte document of nested anchors and aliases expands to billions of
nodes; PyYAML builds them all (minutes of CPU and gigabytes of memory) and a validation error on the result
quotes it back (a 15 MB message). Here the document is first *composed* (PyYAML's node graph, in which an
alias is a shared reference, so composing costs the size of the text), the expanded size of that graph is
counted with memoisation (linear in the number of distinct nodes), and only a document within budget is
constructed. Settings files are a few kilobytes and a few hundred nodes; the limits are far above that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hpd_imaging.errors import ConfigError

#: largest settings file read (bytes)
MAX_YAML_BYTES = 1_000_000
#: most nodes a document may hold once every alias is expanded
MAX_YAML_NODES = 100_000


def expanded_nodes(node: yaml.Node, memo: dict[int, int] | None = None, depth: int = 0) -> int:
    """Number of nodes of ``node`` with every alias expanded (aliases share node objects: memoised)."""
    memo = {} if memo is None else memo
    key = id(node)
    if key in memo:
        return memo[key]
    if depth > 1000:  # nesting this deep is no settings file (and would exhaust the recursion limit)
        return MAX_YAML_NODES + 1
    memo[key] = MAX_YAML_NODES + 1  # a node reached again while being counted: a cycle, over budget
    if isinstance(node, yaml.SequenceNode):
        total = 1 + sum(expanded_nodes(child, memo, depth + 1) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total = 1 + sum(
            expanded_nodes(k, memo, depth + 1) + expanded_nodes(v, memo, depth + 1) for k, v in node.value
        )
    else:
        total = 1
    memo[key] = min(total, MAX_YAML_NODES + 1)
    return memo[key]


def load_yaml_bounded(
    text: str, source: Path | str, *, max_bytes: int = MAX_YAML_BYTES, max_nodes: int = MAX_YAML_NODES
) -> Any:
    """``yaml.safe_load(text)`` for one document within ``max_bytes`` and ``max_nodes`` (aliases expanded).

    Raises :class:`ConfigError` naming ``source`` for a file over either budget or invalid YAML.
    """
    where = str(source)
    size = len(text.encode("utf-8", errors="replace"))
    if size > max_bytes:
        raise ConfigError(
            f"{where}: expected a settings file of at most {max_bytes} bytes, got {size} bytes; "
            "settings files are a few kilobytes (is this the right file?)",
            path=where,
        )
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: invalid YAML: {exc}", path=where) from exc
    except RecursionError as exc:
        raise ConfigError(f"{where}: invalid YAML: nested too deeply", path=where) from exc
    if node is None:
        return None
    n = expanded_nodes(node)
    if n > max_nodes:
        raise ConfigError(
            f"{where}: expected a YAML document of at most {max_nodes} nodes once its aliases (*name) are "
            f"expanded, got more than {max_nodes} (an alias bomb, or anchors reused far more than a settings "
            "file needs); write the values out instead of nesting anchors",
            path=where,
        )
    try:
        return yaml.SafeLoader(text).get_single_data()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: invalid YAML: {exc}", path=where) from exc
