"""Recursive key and type comparison of a JSON document against the seed's example (a fixture of
tests/data/seed): every key of the fixture present with the fixture's JSON type. Rules in
tests/data/seed/README.md."""


def kind(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    raise TypeError(type(v))


def _common_shape(items: list):
    """The shape every fixture element shares: for objects the keys present in all of them."""
    if all(isinstance(i, dict) for i in items):
        keys = set(items[0])
        for i in items[1:]:
            keys &= set(i)
        return {k: items[0][k] for k in items[0] if k in keys}
    return items[0]


def mismatches(fixture, actual, path="$") -> list[str]:
    """Every way actual misses the fixture's keys or types; empty when it has them all."""
    out = []
    fk, ak = kind(fixture), kind(actual)
    if fk == "null":
        if ak not in ("null", "array", "object"):
            out.append(f"{path}: {ak}, the seed has null (a nullable array or object)")
        return out
    if fk == "number" and ak == "integer":
        return out
    if fk != ak:
        return [f"{path}: {ak}, the seed has {fk}"]
    if fk == "object":
        for k, v in fixture.items():
            if k not in actual:
                out.append(f"{path}.{k}: missing")
            else:
                out += mismatches(v, actual[k], f"{path}.{k}")
    elif fk == "array" and fixture and actual:
        shape = _common_shape(fixture)
        for i, a in enumerate(actual):
            out += mismatches(shape, a, f"{path}[{i}]")
    return out
