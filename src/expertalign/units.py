"""Which units of a model are recorded: four-ish module kinds per layer, by module name.

    >>> from expertalign.units import find_units, register_units, UnitSpec
    >>> layout = find_units(model)        # from model.config.model_type
    >>> layout.n_units, layout.modules[0]
    (155520, RecordedModule(name='model.layers.0.self_attn.q_proj', layer=0, kind='attention', ...))
    >>> layout.table()        # pyarrow Table: unit, layer, module, kind, submodule, index
    >>> register_units("my_arch", UnitSpec(layers="blocks", modules={"attn.proj": "attention"}))

A unit is one output feature of a recorded linear module; its global id is its column in every
response matrix and AP vector (modules in layer order, then in the order of the spec).
The LM head, embeddings and layer norms are never recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pyarrow as pa
import torch

__all__ = [
    "UNIT_SPECS",
    "RecordedModule",
    "UnitLayout",
    "UnitSpec",
    "UnknownArchitectureError",
    "find_units",
    "register_units",
    "UNITS_SCHEMA",
]


class UnknownArchitectureError(ValueError):
    """The model's architecture has no unit spec in the registry."""


@dataclass(frozen=True)
class UnitSpec:
    """Module-name suffixes to record inside each layer, with their kind (attention or mlp).

    ``layers`` is the name of the ModuleList holding the blocks (``layers`` for GPT-NeoX and Llama,
    ``h`` for GPT-2); ``modules`` maps the suffix within a block to ``attention`` or ``mlp``.
    """

    layers: str
    modules: dict[str, str] = field(default_factory=dict)


_LLAMA_LIKE = UnitSpec(
    layers="layers",
    modules={
        "self_attn.q_proj": "attention",
        "self_attn.k_proj": "attention",
        "self_attn.v_proj": "attention",
        "self_attn.o_proj": "attention",
        "mlp.gate_proj": "mlp",
        "mlp.up_proj": "mlp",
        "mlp.down_proj": "mlp",
    },
)

UNIT_SPECS: dict[str, UnitSpec] = {
    "gpt_neox": UnitSpec(
        layers="layers",
        modules={
            "attention.query_key_value": "attention",
            "attention.dense": "attention",
            "mlp.dense_h_to_4h": "mlp",
            "mlp.dense_4h_to_h": "mlp",
        },
    ),
    "gpt2": UnitSpec(
        layers="h",
        modules={
            "attn.c_attn": "attention",
            "attn.c_proj": "attention",
            "mlp.c_fc": "mlp",
            "mlp.c_proj": "mlp",
        },
    ),
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "gemma": _LLAMA_LIKE,
    "gemma2": _LLAMA_LIKE,
    "olmo": _LLAMA_LIKE,
    "olmo2": _LLAMA_LIKE,
}


def register_units(model_type: str, spec: UnitSpec) -> None:
    """Teach :func:`find_units` a new architecture (``model.config.model_type``)."""
    UNIT_SPECS[model_type] = spec


@dataclass(frozen=True)
class RecordedModule:
    name: str
    layer: int
    kind: str
    submodule: str
    width: int
    offset: int


UNITS_SCHEMA = pa.schema(
    [
        ("unit", pa.int64()),
        ("layer", pa.int16()),
        ("module", pa.string()),
        ("kind", pa.string()),
        ("submodule", pa.string()),
        ("index", pa.int32()),
    ]
)


@dataclass(frozen=True)
class UnitLayout:
    modules: tuple[RecordedModule, ...]
    n_layers: int

    @property
    def n_units(self) -> int:
        last = self.modules[-1]
        return last.offset + last.width

    def table(self) -> pa.Table:
        import numpy as np

        columns: dict[str, list] = {name: [] for name in UNITS_SCHEMA.names}
        for module in self.modules:
            columns["unit"].append(np.arange(module.offset, module.offset + module.width))
            columns["layer"].append(np.full(module.width, module.layer, dtype=np.int16))
            columns["module"].append(np.full(module.width, module.name, dtype=object))
            columns["kind"].append(np.full(module.width, module.kind, dtype=object))
            columns["submodule"].append(np.full(module.width, module.submodule, dtype=object))
            columns["index"].append(np.arange(module.width, dtype=np.int32))
        arrays = [
            pa.array(np.concatenate(columns[name]), type=UNITS_SCHEMA.field(name).type)
            for name in UNITS_SCHEMA.names
        ]
        return pa.Table.from_arrays(arrays, schema=UNITS_SCHEMA)


def _output_width(module: torch.nn.Module, name: str) -> int:
    width = getattr(module, "out_features", None) or getattr(module, "nf", None)
    if width is None:
        raise UnknownArchitectureError(
            f"module {name} ({type(module).__name__}) has no out_features/nf: "
            "cannot count its units"
        )
    return int(width)


def find_units(model: torch.nn.Module, spec: UnitSpec | None = None) -> UnitLayout:
    """The recorded modules of ``model``, found by name from its ``config.model_type`` spec."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if spec is None:
        if model_type not in UNIT_SPECS:
            raise UnknownArchitectureError(
                f"no unit spec for model_type {model_type!r}; known: {sorted(UNIT_SPECS)}. "
                "Add one with expertalign.units.register_units(model_type, UnitSpec(...))"
            )
        spec = UNIT_SPECS[model_type]
    suffixes = "|".join(re.escape(s) for s in spec.modules)
    pattern = re.compile(rf"^(?:.*\.)?{re.escape(spec.layers)}\.(\d+)\.({suffixes})$")
    found: list[tuple[int, int, str, str, torch.nn.Module]] = []
    order = {suffix: i for i, suffix in enumerate(spec.modules)}
    for name, module in model.named_modules():
        match = pattern.match(name)
        if match:
            layer, suffix = int(match.group(1)), match.group(2)
            found.append((layer, order[suffix], name, suffix, module))
    if not found:
        raise UnknownArchitectureError(
            f"no module of {type(model).__name__} matches the unit spec for {model_type!r} "
            f"(layers={spec.layers!r}, modules={list(spec.modules)})"
        )
    matched = {item[3] for item in found}
    missing = [s for s in spec.modules if s not in matched]
    if missing:
        # a misspelt suffix would otherwise quietly leave its modules out of every AP vector
        layer, _, name, suffix, _ = min(found, key=lambda item: item[0])
        prefix = name[: -len(suffix)]
        linear = sorted(
            n[len(prefix) :]
            for n, m in model.named_modules()
            if n.startswith(prefix) and (hasattr(m, "out_features") or hasattr(m, "nf"))
        )
        raise UnknownArchitectureError(
            f"unit spec for {model_type!r}: module suffix(es) {missing} match no module of "
            f"{type(model).__name__}; the linear modules of layer {layer} are {linear}"
        )
    found.sort(key=lambda item: (item[0], item[1]))
    modules = []
    offset = 0
    for layer, _, name, suffix, module in found:
        width = _output_width(module, name)
        modules.append(
            RecordedModule(
                name=name,
                layer=layer,
                kind=spec.modules[suffix],
                submodule=suffix.rsplit(".", 1)[-1],
                width=width,
                offset=offset,
            )
        )
        offset += width
    return UnitLayout(tuple(modules), n_layers=max(m.layer for m in modules) + 1)
