"""The one YAML loader of detopt's input files: safe, with duplicate keys and aliases refused.

A key given twice in one mapping is almost always a typo that would silently drop a value, and
aliases (``*name``) are not needed in any detopt file while nested ones can expand a few
kilobytes into gigabytes. The run configuration (`detopt.optimize.config`) and the shower
geometry files (`detopt.simulation.shower_dataset.load_shower_geometry`) read YAML through it.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["UniqueKeyLoader", "load_yaml"]


class UniqueKeyLoader(yaml.SafeLoader):
    """The safe YAML loader that refuses a key given twice in one mapping, and aliases (``*name``)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"YAML aliases (*{event.anchor}) are not allowed in a detopt input file; write the values out",
                event.start_mark,
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: SafeConstructor reports it
                break
            if duplicate:
                line = key_node.start_mark.line + 1
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} given twice (line {line})", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """Parse one YAML document with `UniqueKeyLoader` (errors are ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=UniqueKeyLoader)
