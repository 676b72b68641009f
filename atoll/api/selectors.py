"""Label and field selectors with kube-apiserver's grammar, semantics and error texts.

Label selectors come as text (``a=b,c!=d,e in (x,y),f notin (z),g,!h``) from
``?labelSelector=`` or as a structured ``metav1.LabelSelector`` (``matchLabels`` and
``matchExpressions``) inside objects; both become one :class:`LabelSelector`. A
structured ``None`` selects nothing, an empty one selects everything, as in kube.

Field selectors (``?fieldSelector=``) support ``=``, ``==`` and ``!=`` joined by commas
(``\\``-escapes for ``,``, ``=`` and ``\\``). Which fields a kind accepts, and what a
rejected field's error says, follows kube-apiserver 1.32's per-kind field label
conversion functions (see :data:`FIELD_SELECTOR_RULES`). Custom resources accept
``metadata.name``, ``metadata.namespace`` (when namespaced) and the CRD's
``selectableFields``.

Parse errors and unsupported fields raise :class:`~atoll.api.errors.BadRequest` with
kube's message, which is what kube-apiserver answers for a bad list/watch query.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from atoll.api import meta
from atoll.api.errors import BadRequest
from atoll.api.meta import Cause, FieldPath, PathLike
from atoll.api.resources import ResourceInfo

logger = logging.getLogger(__name__)

Operator = Literal["=", "==", "!=", "in", "notin", "exists", "!", "gt", "lt"]

# -- label selectors ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``key op values`` term; values are kept sorted, as kube's parser keeps them."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op in ("=", "==", "in"):
            return self.key in labels and labels[self.key] in self.values
        if op in ("!=", "notin"):
            return self.key not in labels or labels[self.key] not in self.values
        if op == "exists":
            return self.key in labels
        if op == "!":
            return self.key not in labels
        if op in ("gt", "lt"):
            if self.key not in labels or len(self.values) != 1:
                return False
            try:
                have, want = int(labels[self.key]), int(self.values[0])
            except ValueError:
                return False
            return have > want if op == "gt" else have < want
        return False

    def to_string(self) -> str:
        op = self.operator
        if op == "exists":
            return self.key
        if op == "!":
            return "!" + self.key
        vals = sorted(self.values)
        if op in ("in", "notin"):
            return f"{self.key} {op} ({','.join(vals)})"
        symbol = {"gt": ">", "lt": "<"}.get(op, op)
        return f"{self.key}{symbol}{vals[0] if len(vals) == 1 else ','.join(vals)}"


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A parsed label selector. ``nothing`` is kube's ``labels.Nothing()`` (a nil selector)."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    # construction ------------------------------------------------------------------------
    @classmethod
    def everything(cls) -> LabelSelector:
        return cls()

    @classmethod
    def none(cls) -> LabelSelector:
        return cls(nothing=True)

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        """Parse the string form; raises ``BadRequest`` with kube's parser message."""
        try:
            reqs = _LabelParser(text).parse()
        except _ParseError as exc:
            raise BadRequest(str(exc)) from None
        return cls(tuple(sorted(reqs, key=lambda r: r.key)))

    @classmethod
    def from_dict(cls, selector: Mapping[str, Any] | None) -> LabelSelector:
        """``metav1.LabelSelectorAsSelector``: None selects nothing, ``{}`` everything.

        Raises ``BadRequest`` for an operator kube does not know or an invalid term
        (use :func:`validate_label_selector` to get field-level causes instead).
        """
        if selector is None:
            return cls.none()
        match_labels = selector.get("matchLabels") or {}
        exprs = selector.get("matchExpressions") or []
        if not match_labels and not exprs:
            return cls.everything()
        reqs: list[Requirement] = []
        for k, v in dict(match_labels).items():
            reqs.append(_new_requirement(str(k), "=", ["" if v is None else str(v)]))
        for e in exprs:
            e = e if isinstance(e, Mapping) else {}
            op_name = str(e.get("operator") or "")
            op = _STRUCTURED_OPS.get(op_name)
            if op is None:
                raise BadRequest(f"{meta.go_quote(op_name)} is not a valid label selector operator")
            reqs.append(_new_requirement(str(e.get("key") or ""), op, [str(v) for v in e.get("values") or []]))
        return cls(tuple(sorted(reqs, key=lambda r: r.key)))

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> LabelSelector:
        """``labels.SelectorFromSet``: every label must be present with its value."""
        return cls(tuple(Requirement(k, "=", (v,)) for k, v in sorted(labels.items())))

    # use ---------------------------------------------------------------------------------
    @property
    def empty(self) -> bool:
        """Selects everything."""
        return not self.nothing and not self.requirements

    def matches(self, labels: Mapping[str, Any] | None) -> bool:
        if self.nothing:
            return False
        have = meta.string_map(labels)
        return all(r.matches(have) for r in self.requirements)

    def to_string(self) -> str:
        """The canonical text form (terms sorted by key; ``in``-sets sorted)."""
        return ",".join(r.to_string() for r in self.requirements)

    def __str__(self) -> str:
        return self.to_string()

    def requires_exact_match(self, key: str) -> str | None:
        """The value the selector pins ``key`` to with ``=``/``==``, if any (for indexes)."""
        for r in self.requirements:
            if r.key == key and r.operator in ("=", "==") and len(r.values) == 1:
                return r.values[0]
        return None


_STRUCTURED_OPS: dict[str, Operator] = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


def selector_string(selector: Mapping[str, Any] | str | None) -> str:
    """A structured or text selector as kube's text form (used for ``/scale`` ``status.selector``).

    Built-in workloads keep a structured ``metav1.LabelSelector`` at ``.spec.selector``;
    their Scale's ``status.selector`` is this function applied to it. Custom resources
    keep the text form already (``.status.selector``), which is returned unchanged.
    """
    if selector is None:
        return ""
    if isinstance(selector, str):
        return selector
    return LabelSelector.from_dict(selector).to_string()


def matches_selector(selector: Mapping[str, Any] | None, labels: Mapping[str, Any] | None) -> bool:
    """Whether a structured selector matches a label set (None matches nothing)."""
    try:
        return LabelSelector.from_dict(selector).matches(labels)
    except BadRequest:
        return False


class _ParseError(Exception):
    pass


def _new_requirement(key: str, op: Operator, values: list[str]) -> Requirement:
    """``labels.NewRequirement``: validates the key, the value count and every value."""
    errs: list[str] = []
    key_msgs = meta.is_qualified_name(key)
    if key_msgs:
        errs.append(f"key: Invalid value: {meta.go_quote(key)}: {'; '.join(key_msgs)}")
    vals_repr = meta.go_value(values)
    if op in ("in", "notin"):
        if not values:
            errs.append(f"values: Invalid value: {vals_repr}: for 'in', 'notin' operators, values set can't be empty")
    elif op in ("=", "==", "!="):
        if len(values) != 1:
            errs.append(f"values: Invalid value: {vals_repr}: exact-match compatibility requires one single value")
    elif op in ("exists", "!"):
        if values:
            errs.append(f"values: Invalid value: {vals_repr}: values set must be empty for exists and does not exist")
    elif op in ("gt", "lt"):
        if len(values) != 1:
            errs.append(f"values: Invalid value: {vals_repr}: for 'Gt', 'Lt' operators, exactly one value is required")
        for i, v in enumerate(values):
            try:
                int(v)
            except ValueError:
                errs.append(f"values[{i}]: Invalid value: {meta.go_quote(v)}: for 'Gt', 'Lt' operators, the value "
                            "must be an integer")
    for i, v in enumerate(values):
        msgs = meta.is_valid_label_value(v)
        if msgs:
            errs.append(f"values[{i}][{key}]: Invalid value: {meta.go_quote(v)}: {'; '.join(msgs)}")
    if errs:
        raise _ParseError(errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]")
    return Requirement(key, op, tuple(sorted(set(values))))


_SPECIAL = "=!(),><"
_TOKEN_END, _IDENT, _DNE, _EQ, _DEQ, _NEQ, _GT, _LT, _IN, _NOTIN, _OPEN, _CLOSE, _COMMA = range(13)
_SYMBOLS = {"!": _DNE, "!=": _NEQ, "(": _OPEN, ")": _CLOSE, ",": _COMMA, "=": _EQ, "==": _DEQ, ">": _GT, "<": _LT}


class _LabelParser:
    """A port of the grammar of kube's ``labels.Parse`` (lexer, then a one-token-lookahead parser)."""

    def __init__(self, text: str) -> None:
        self.tokens = self._lex(text)
        self.pos = 0

    @staticmethod
    def _lex(text: str) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        i, n = 0, len(text)
        while i < n:
            ch = text[i]
            if ch.isspace():
                i += 1
                continue
            if ch in _SPECIAL:
                two = text[i:i + 2]
                if two in _SYMBOLS:
                    out.append((_SYMBOLS[two], two))
                    i += 2
                else:
                    out.append((_SYMBOLS[ch], ch))
                    i += 1
                continue
            j = i
            while j < n and not text[j].isspace() and text[j] not in _SPECIAL:
                j += 1
            word = text[i:j]
            out.append((_IN if word == "in" else _NOTIN if word == "notin" else _IDENT, word))
            i = j
        out.append((_TOKEN_END, ""))
        return out

    def _peek(self, values: bool = True) -> tuple[int, str]:
        tok, lit = self.tokens[self.pos]
        if values and tok in (_IN, _NOTIN):
            tok = _IDENT
        return tok, lit

    def _next(self, values: bool = True) -> tuple[int, str]:
        tok, lit = self._peek(values)
        self.pos += 1
        return tok, lit

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self._peek()
            if tok in (_IDENT, _DNE):
                try:
                    reqs.append(self._requirement())
                except _ParseError as exc:
                    raise _ParseError(f"unable to parse requirement: {exc}") from None
                tok, lit = self._next()
                if tok == _TOKEN_END:
                    return reqs
                if tok == _COMMA:
                    tok2, lit2 = self._peek()
                    if tok2 not in (_IDENT, _DNE):
                        raise _ParseError(f"found '{lit2}', expected: identifier after ','")
                    continue
                raise _ParseError(f"found '{lit}', expected: ',' or 'end of string'")
            if tok == _TOKEN_END:
                return reqs
            raise _ParseError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def _requirement(self) -> Requirement:
        operator: Operator | None = None
        tok, lit = self._next()
        if tok == _DNE:
            operator = "!"
            tok, lit = self._next()
        if tok != _IDENT:
            raise _ParseError(f"found '{lit}', expected: identifier")
        key_msgs = meta.is_qualified_name(lit)
        if key_msgs:
            raise _ParseError(f"<nil>: Invalid value: {meta.go_quote(lit)}: {'; '.join(key_msgs)}")
        key = lit
        nxt, _ = self._peek()
        if operator == "!" or nxt in (_TOKEN_END, _COMMA):
            # "!a" is complete by itself: kube then complains about whatever follows it.
            return _new_requirement(key, operator or "exists", [])
        tok, lit = self._next(values=False)
        op_map: dict[int, Operator] = {_IN: "in", _NOTIN: "notin", _EQ: "=", _DEQ: "==", _NEQ: "!=",
                                       _GT: "gt", _LT: "lt"}
        if tok not in op_map:
            raise _ParseError(f"found '{lit}', expected: in, notin, =, ==, !=, gt, lt")
        op = op_map[tok]
        values = self._set_values() if op in ("in", "notin") else self._exact_value()
        return _new_requirement(key, op, values)

    def _exact_value(self) -> list[str]:
        tok, _ = self._peek()
        if tok in (_TOKEN_END, _COMMA):
            return [""]
        tok, lit = self._next()
        if tok == _IDENT:
            return [lit]
        raise _ParseError(f"found '{lit}', expected: identifier")

    def _set_values(self) -> list[str]:
        tok, lit = self._next()
        if tok != _OPEN:
            raise _ParseError(f"found '{lit}' expected: '('")
        tok, lit = self._peek()
        if tok in (_IDENT, _COMMA):
            values = self._identifiers()
            tok2, _ = self._next()
            if tok2 != _CLOSE:
                raise _ParseError(f"found '{lit}', expected: ')'")
            return values
        if tok == _CLOSE:
            self._next()
            return [""]
        raise _ParseError(f"found '{lit}', expected: ',', ')' or identifier")

    def _identifiers(self) -> list[str]:
        values: set[str] = set()
        while True:
            tok, lit = self._next()
            if tok == _IDENT:
                values.add(lit)
                tok2, lit2 = self._peek()
                if tok2 == _COMMA:
                    continue
                if tok2 == _CLOSE:
                    return sorted(values)
                raise _ParseError(f"found '{lit2}', expected: ',' or ')'")
            if tok == _COMMA:
                if not values:
                    values.add("")
                tok2, _ = self._peek()
                if tok2 == _CLOSE:
                    values.add("")
                    return sorted(values)
                if tok2 == _COMMA:
                    self._next()
                    values.add("")
                continue
            raise _ParseError(f"found '{lit}', expected: ',', or identifier")


def validate_label_selector(selector: Any, path: PathLike, *, allow_invalid_values: bool = False) -> list[Cause]:
    """``ValidateLabelSelector``: causes for a structured selector inside an object."""
    causes: list[Cause] = []
    if selector is None:
        return causes
    fp = FieldPath(str(path))
    if not isinstance(selector, Mapping):
        return [meta.invalid_value(fp, selector, "must be a label selector object")]
    causes += meta.validate_labels(selector.get("matchLabels"), fp.child("matchLabels"))
    for i, e in enumerate(selector.get("matchExpressions") or []):
        ep = fp.child("matchExpressions").index(i)
        e = e if isinstance(e, Mapping) else {}
        op = e.get("operator")
        values = e.get("values") or []
        if op in ("In", "NotIn"):
            if not values:
                causes.append(meta.required(ep.child("values"), "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                causes.append(meta.forbidden(ep.child("values"),
                                             "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            causes.append(meta.invalid_value(ep.child("operator"), "" if op is None else op,
                                             "not a valid selector operator"))
        causes += meta.validate_label_name(str(e.get("key") or ""), ep.child("key"))
        if not allow_invalid_values:
            for j, v in enumerate(values):
                causes += [meta.invalid_value(ep.child("values").index(j), v, m)
                           for m in meta.is_valid_label_value(str(v))]
    return causes


# -- field selectors ----------------------------------------------------------------------

FieldOperator = Literal["=", "==", "!="]


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    operator: FieldOperator
    value: str

    def matches(self, fields: Mapping[str, str]) -> bool:
        have = fields.get(self.field, "")
        return have != self.value if self.operator == "!=" else have == self.value

    def to_string(self) -> str:
        return f"{self.field}{self.operator}{escape_field_value(self.value)}"


ValueFn = Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True, slots=True)
class FieldRules:
    """One kind's field-selector contract: what is accepted, and how values are read."""

    accepted: Mapping[str, str]
    """Client field label -> canonical label (aliases such as ``spec.host`` map elsewhere)."""
    values: Mapping[str, ValueFn]
    """Canonical label -> how to read it; an accepted label missing here reads as ``""``."""
    reject: Callable[[str], str]
    """The error message for an unsupported label."""


def _str_at(path: str, fallback: str | None = None) -> ValueFn:
    def read(obj: Mapping[str, Any]) -> str:
        v = meta.get_path(obj, path)
        if (v is None or v == "") and fallback is not None:
            v = meta.get_path(obj, fallback)
        return _stringify(v)

    return read


def _bool_at(path: str) -> ValueFn:
    return lambda obj: "true" if meta.get_path(obj, path) is True else "false"


def _int_at(path: str) -> ValueFn:
    def read(obj: Mapping[str, Any]) -> str:
        v = meta.get_path(obj, path)
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else "0"

    return read


def _first_pod_ip(obj: Mapping[str, Any]) -> str:
    ips = meta.get_path(obj, "status.podIPs")
    if isinstance(ips, list) and ips and isinstance(ips[0], Mapping):
        return str(ips[0].get("ip") or "")
    return _stringify(meta.get_path(obj, "status.podIP"))


def _stringify(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _not_supported(label: str) -> str:
    return f"field label not supported: {label}"


def _default_reject(label: str) -> str:
    return f'{meta.go_quote(label)} is not a known field selector: only "metadata.name", "metadata.namespace"'


def _rules(*, namespaced: bool, accepted: Iterable[str] = (), aliases: Mapping[str, str] | None = None,
           values: Mapping[str, ValueFn] | None = None,
           reject: Callable[[str], str] = _not_supported) -> FieldRules:
    acc = {"metadata.name": "metadata.name"}
    vals: dict[str, ValueFn] = {"metadata.name": _str_at("metadata.name")}
    if namespaced:
        acc["metadata.namespace"] = "metadata.namespace"
        vals["metadata.namespace"] = _str_at("metadata.namespace")
    acc.update({a: a for a in accepted})
    acc.update(aliases or {})
    vals.update(values or {})
    return FieldRules(acc, vals, reject)


_EVENT_FIELDS = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")

FIELD_SELECTOR_RULES: dict[tuple[str, str], FieldRules] = {
    ("", "pods"): _rules(
        namespaced=True,
        accepted=("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                  "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs", "status.nominatedNodeName"),
        aliases={"spec.host": "spec.nodeName"},
        values={"spec.nodeName": _str_at("spec.nodeName"), "spec.restartPolicy": _str_at("spec.restartPolicy"),
                "spec.schedulerName": _str_at("spec.schedulerName"),
                "spec.serviceAccountName": _str_at("spec.serviceAccountName"),
                "spec.hostNetwork": _bool_at("spec.hostNetwork"), "status.phase": _str_at("status.phase"),
                "status.podIP": _first_pod_ip,
                "status.nominatedNodeName": _str_at("status.nominatedNodeName")},
        # status.podIPs is accepted but never set by kube's PodToSelectableFields: it reads "".
    ),
    ("", "nodes"): _rules(namespaced=False, accepted=("spec.unschedulable",),
                          values={"spec.unschedulable": _bool_at("spec.unschedulable")}),
    ("", "namespaces"): _rules(namespaced=False, accepted=("status.phase",),
                               values={"status.phase": _str_at("status.phase")}),
    ("", "secrets"): _rules(namespaced=True, accepted=("type",), values={"type": _str_at("type")}),
    ("", "services"): _rules(namespaced=True, accepted=("spec.clusterIP", "spec.type"),
                             values={"spec.clusterIP": _str_at("spec.clusterIP"), "spec.type": _str_at("spec.type")}),
    ("", "replicationcontrollers"): _rules(namespaced=True, accepted=("status.replicas",),
                                           values={"status.replicas": _int_at("status.replicas")}),
    ("", "events"): _rules(
        namespaced=True,
        accepted=(*tuple(f"involvedObject.{f}" for f in _EVENT_FIELDS), "reason", "reportingComponent", "source", "type"),
        values={**{f"involvedObject.{f}": _str_at(f"involvedObject.{f}") for f in _EVENT_FIELDS},
                "reason": _str_at("reason"), "reportingComponent": _str_at("reportingComponent"),
                "source": _str_at("source.component", fallback="reportingComponent"), "type": _str_at("type")},
    ),
    ("events.k8s.io", "events"): _rules(
        namespaced=True,
        accepted=("reason", "type"),
        aliases={**{f"regarding.{f}": f"involvedObject.{f}" for f in _EVENT_FIELDS},
                 "reportingController": "reportingComponent"},
        values={**{f"involvedObject.{f}": _str_at(f"regarding.{f}") for f in _EVENT_FIELDS},
                "reason": _str_at("reason"), "reportingComponent": _str_at("reportingController"),
                "type": _str_at("type")},
    ),
    ("batch", "jobs"): _rules(namespaced=True, accepted=("status.successful",),
                              values={"status.successful": _int_at("status.succeeded")},
                              reject=lambda label: f'field label {meta.go_quote(label)} not supported for Job'),
    ("certificates.k8s.io", "certificatesigningrequests"): _rules(
        namespaced=False, accepted=("spec.signerName",), values={"spec.signerName": _str_at("spec.signerName")}),
}
"""Built-in kinds with their own field label conversion in kube-apiserver 1.32.

Every other built-in kind gets kube's default: ``metadata.name`` and
``metadata.namespace`` only (for cluster-scoped kinds ``metadata.namespace`` is
accepted and reads ``""``), with the ``"X" is not a known field selector`` message.
Note that kube's apps/v1 registers no conversion, so ReplicaSets do **not** accept
``status.replicas`` (extensions/v1beta1 once did); Atoll answers as kube does.
"""


def field_rules(info: ResourceInfo) -> FieldRules:
    """The field-selector rules for a resource (built-in table, CRD selectableFields, or default)."""
    rules = FIELD_SELECTOR_RULES.get((info.group, info.plural))
    if rules is not None and not info.custom:
        return rules
    if info.custom:
        labels = [f.lstrip(".") for f in info.selectable_fields]
        return _rules(namespaced=info.namespaced, accepted=labels,
                      values={label: _str_at(label) for label in labels})
    base = _rules(namespaced=True, reject=_default_reject)
    if not info.namespaced:
        # The generic conversion accepts metadata.namespace; a cluster-scoped object has none.
        base = FieldRules(base.accepted, {"metadata.name": _str_at("metadata.name")}, base.reject)
    if info.selectable_fields:
        labels = [f.lstrip(".") for f in info.selectable_fields]
        base = FieldRules({**base.accepted, **{f: f for f in labels}},
                          {**base.values, **{f: _str_at(f) for f in labels}}, base.reject)
    return base


def field_set(info: ResourceInfo, obj: Mapping[str, Any]) -> dict[str, str]:
    """The selectable fields of one object (kube's ``ToSelectableFields``)."""
    return {label: read(obj) for label, read in field_rules(info).values.items()}


def escape_field_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(value: str) -> str:
    if "\\" not in value and "," not in value and "=" not in value:
        return value
    out: list[str] = []
    in_slash = False
    for ch in value:
        if in_slash:
            if ch in ("\\", ",", "="):
                out.append(ch)
                in_slash = False
                continue
            raise BadRequest(f"invalid field selector: invalid escape sequence: \\{ch}")
        if ch == "\\":
            in_slash = True
        elif ch in (",", "="):
            raise BadRequest(f"invalid field selector: unescaped character in value: {ord(ch)}")
        else:
            out.append(ch)
    if in_slash:
        raise BadRequest("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(text: str) -> list[str]:
    terms: list[str] = []
    start, escaped = 0, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


_FIELD_OPERATORS: tuple[FieldOperator, ...] = ("!=", "==", "=")


def _split_term(term: str) -> tuple[str, FieldOperator, str] | None:
    for i in range(len(term)):
        for op in _FIELD_OPERATORS:
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """A parsed field selector, bound to the resource whose fields it selects on."""

    requirements: tuple[FieldRequirement, ...] = ()
    info: ResourceInfo | None = field(default=None, compare=False)

    @classmethod
    def parse(cls, text: str, info: ResourceInfo | None = None) -> FieldSelector:
        """Parse (and, with ``info``, check and canonicalise) a field selector.

        Raises ``BadRequest`` with kube's message for bad syntax or an unsupported field.
        """
        terms = sorted(_split_terms(text))
        reqs: list[FieldRequirement] = []
        for term in terms:
            if term == "":
                continue
            parts = _split_term(term)
            if parts is None:
                raise BadRequest(f"invalid selector: '{text}'; can't understand '{term}'")
            lhs, op, rhs = parts
            reqs.append(FieldRequirement(lhs, op, _unescape_field_value(rhs)))
        if info is not None:
            rules = field_rules(info)
            checked = []
            for r in reqs:
                canonical = rules.accepted.get(r.field)
                if canonical is None:
                    raise BadRequest(rules.reject(r.field))
                checked.append(FieldRequirement(canonical, r.operator, r.value))
            reqs = checked
        return cls(tuple(reqs), info)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, obj: Mapping[str, Any], info: ResourceInfo | None = None) -> bool:
        info = info or self.info
        if not self.requirements:
            return True
        if info is None:
            raise ValueError("FieldSelector.matches needs the ResourceInfo (parse with info, or pass it)")
        fields = field_set(info, obj)
        return all(r.matches(fields) for r in self.requirements)

    def matches_fields(self, fields: Mapping[str, str]) -> bool:
        return all(r.matches(fields) for r in self.requirements)

    def requires_exact_match(self, field_label: str) -> str | None:
        """The value the selector pins a field to with ``=``/``==`` (e.g. ``spec.nodeName`` for kubelets)."""
        for r in self.requirements:
            if r.field == field_label and r.operator in ("=", "=="):
                return r.value
        return None

    def to_string(self) -> str:
        return ",".join(r.to_string() for r in self.requirements)

    def __str__(self) -> str:
        return self.to_string()


__all__ = [
    "FIELD_SELECTOR_RULES",
    "FieldRequirement",
    "FieldRules",
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "escape_field_value",
    "field_rules",
    "field_set",
    "matches_selector",
    "selector_string",
    "validate_label_selector",
]
